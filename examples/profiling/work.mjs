// The example app's work, a stand-in for what an Electron app's main process does: a
// layout pass and a render pass, the render twice as long. Run alone, it works for 2 s:
//   nodebpf profile --perf-map -- node examples/profiling/work.mjs
export function layout(n) {
  let x = 0;
  for (let i = 0; i < n; i++) x += Math.sqrt(i) * Math.sin(i);
  return x;
}

export function render(n) {
  let x = 0;
  for (let i = 0; i < 2 * n; i++) x += Math.sqrt(i) * Math.cos(i);
  return x;
}

export function frame() {
  return layout(50_000) + render(50_000);
}

/** Frames until `ms` have passed. */
export function workFor(ms) {
  const end = Date.now() + ms;
  let x = 0;
  while (Date.now() < end) x += frame();
  return x;
}

if (import.meta.url === `file://${process.argv[1]}`) workFor(2000);
