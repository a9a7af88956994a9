// A small tool written against the skeleton `nodebpf gen` makes of opensnoop.bpf.o, with
// no offsets by hand: test/gen.test.ts generates opensnoop.ts next to this file, compiles
// both under strict + exactOptionalPropertyTypes, and runs `watch()`. The @ts-expect-error
// lines are checked too: the types refuse what the object would.
import { openSync, closeSync } from 'node:fs';

import type { Link } from 'nodebpf';

import { EventKind, eventCodec, loadOpensnoop, type Event, type Limits } from './opensnoop.js';

export interface Seen {
  events: Event[];
  count: bigint | undefined;
  hits: bigint[] | undefined;
  opens: bigint;
  lastComm: string;
  limits: Limits;
  kindOpenat: number;
  eventSize: number;
}

/** Opens `path` `times` times with the program in, filtered to this process, and reports. */
export async function watch(path: string, times: number): Promise<Seen> {
  await using skel = await loadOpensnoop({ globals: { target_tgid: process.pid } });
  const typesOnly = () => {
    // @ts-expect-error target_tgid is a number
    skel.globals.target_tgid = 'x';
    // @ts-expect-error a per-CPU map's values are arrays
    const wrong: bigint | undefined = skel.maps.hits.get(0);
    return wrong;
  };
  void typesOnly;
  const link: Link = skel.programs.on_openat.attach();
  for (let i = 0; i < times; i++) closeSync(openSync(path, 'r'));
  link.close();
  const events: Event[] = [];
  for (const batch of [skel.events.events.ring.poll()]) {
    batch?.forEach((view, offset, length) => {
      const e = eventCodec.record(view, offset, length);
      if (e.filename === path) events.push(e);
    });
    batch?.release();
  }
  const count: bigint | undefined = skel.maps.counts.get(process.pid);
  return {
    events,
    count,
    hits: skel.maps.hits.get(0),
    opens: skel.globals.opens,
    lastComm: skel.globals.last_comm,
    limits: skel.globals.limits,
    kindOpenat: EventKind.EV_OPENAT,
    eventSize: eventCodec.size,
  };
}

/** Live globals: no event once max_events is 0, written while loaded. */
export async function stopAfterZero(path: string): Promise<{ events: number; opens: bigint }> {
  await using skel = await loadOpensnoop({ globals: { target_tgid: process.pid } });
  skel.globals.limits = { max_events: 0, min_dfd: -100 };
  using _link = skel.programs.on_openat.attach();
  closeSync(openSync(path, 'r'));
  let events = 0;
  for await (const e of skel.events.events.events({ signal: AbortSignal.timeout(200) })) if (e.filename === path) events++;
  return { events, opens: skel.globals.opens };
}
