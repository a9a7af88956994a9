//! The options JS passes, defined once here (the generated `index.d.ts` is their
//! TypeScript type), each number checked where it enters: a value out of its range is a
//! `RANGE` error naming the parameter, never a wrapped or truncated number.

use std::collections::HashMap;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use nodebpf_core as core;
use nodebpf_core::symbols::pattern::Selection;

pub type Checked<T> = core::Result<T>;

/// A BigInt that must fit in a u64.
pub fn u64_of(param: &str, b: &BigInt) -> Checked<u64> {
    let (negative, value, lossless) = b.get_u64();
    if (negative && value != 0) || !lossless {
        return Err(core::Error::range(param, show(b), "0..=2^64-1"));
    }
    Ok(value)
}

pub fn opt_u64(param: &str, b: Option<&BigInt>) -> Checked<Option<u64>> {
    b.map(|b| u64_of(param, b)).transpose()
}

pub fn u64s(param: &str, v: Option<&[BigInt]>) -> Checked<Option<Vec<u64>>> {
    v.map(|v| {
        v.iter()
            .enumerate()
            .map(|(i, b)| u64_of(&format!("{param}[{i}]"), b))
            .collect()
    })
    .transpose()
}

/// A BigInt as a signed 128-bit integer (globals are at most 16 bytes).
pub fn i128_of(param: &str, b: &BigInt) -> Checked<i128> {
    let (negative, magnitude, lossless) = b.get_u128();
    let too_big = || core::Error::range(param, show(b), "-2^127..=2^128-1");
    if !lossless {
        return Err(too_big());
    }
    if negative {
        if magnitude > 1u128 << 127 {
            return Err(too_big());
        }
        Ok((magnitude as i128).wrapping_neg())
    } else {
        // Kept as the bit pattern: an unsigned 16-byte global may use the top bit.
        Ok(magnitude as i128)
    }
}

/// A JS number that must be an integer in `min..=max`.
pub fn int_of(param: &str, v: f64, min: i64, max: i64) -> Checked<i64> {
    if !v.is_finite() || v.fract() != 0.0 || v < min as f64 || v > max as f64 {
        return Err(core::Error::range(
            param,
            v,
            format!("integers {min}..={max}"),
        ));
    }
    Ok(v as i64)
}

pub fn pid_of(v: Option<f64>) -> Checked<Option<i32>> {
    v.map(|v| int_of("pid", v, 0, i32::MAX as i64).map(|p| p as i32))
        .transpose()
}

fn show(b: &BigInt) -> String {
    let mut digits = String::from(if b.sign_bit { "-0x" } else { "0x" });
    for w in b.words.iter().rev() {
        digits.push_str(&format!("{w:016x}"));
    }
    digits
}

/// `pattern` (a glob) or `names` (exact).
pub fn selection(pattern: &Option<String>, names: &Option<Vec<String>>) -> Option<Selection> {
    match (pattern, names) {
        (Some(g), _) => Some(Selection::Glob(g.clone())),
        (None, Some(n)) => Some(Selection::Names(n.clone())),
        (None, None) => None,
    }
}

#[napi(object)]
pub struct LoadOptions {
    /// Byte globals, exactly the variable's size.
    pub globals: Option<HashMap<String, Uint8Array>>,
    /// Integer globals, checked against the variable's BTF size and signedness.
    pub int_globals: Option<HashMap<String, BigInt>>,
    pub btf_path: Option<String>,
    pub pin_path: Option<String>,
    /// Per map, what to change before it is created.
    pub maps: Option<HashMap<String, MapOptions>>,
    /// Per program, what to change before loading.
    pub programs: Option<HashMap<String, ProgramOptions>>,
}

/// A map's configuration before load (libbpf's `bpf_map__set_*`).
#[napi(object)]
pub struct MapOptions {
    /// `bpf_map__set_max_entries`: for a ring buffer, its size in bytes (rounded up to a
    /// power-of-2 multiple of the page size, as libbpf does).
    pub max_entries: Option<u32>,
    /// `bpf_map__set_value_size`.
    pub value_size: Option<u32>,
    /// `bpf_map__set_map_flags`.
    pub map_flags: Option<f64>,
    /// `bpf_map__set_numa_node`.
    pub numa_node: Option<f64>,
    /// A map of maps' inner template: another map of the object, by name...
    pub inner_map: Option<String>,
    /// ...or a definition (a `createMap` map's).
    pub inner_map_def: Option<crate::map::MapDefinition>,
    /// `bpf_map__reuse_fd`: use this map fd (duplicated) instead of creating the map.
    pub reuse_fd: Option<f64>,
    /// `bpf_map__set_pin_path`: reuse the map pinned there, or pin the new map there.
    pub pin_path: Option<String>,
}

impl MapOptions {
    fn to_core(&self, name: &str) -> Checked<core::MapConfig> {
        let u32_of = |param: &str, v: Option<f64>| {
            v.map(|v| {
                int_of(&format!("map '{name}' {param}"), v, 0, u32::MAX.into()).map(|n| n as u32)
            })
            .transpose()
        };
        let inner_map = match (&self.inner_map, &self.inner_map_def) {
            (Some(n), _) => Some(core::InnerMap::Name(n.clone())),
            (None, Some(d)) => Some(core::InnerMap::Def(
                d.to_core(&format!("map '{name}' innerMap "))?,
            )),
            (None, None) => None,
        };
        let reuse_fd = self
            .reuse_fd
            .map(|v| {
                let param = format!("map '{name}' reuseFd");
                let fd = int_of(&param, v, 0, i32::MAX.into())?;
                core::map_create::dup_map_fd(&param, fd).map(std::sync::Arc::new)
            })
            .transpose()?;
        Ok(core::MapConfig {
            max_entries: self.max_entries,
            value_size: self.value_size,
            flags: u32_of("mapFlags", self.map_flags)?,
            numa_node: u32_of("numaNode", self.numa_node)?,
            inner_map,
            reuse_fd,
            pin_path: self.pin_path.clone().map(Into::into),
        })
    }
}

/// A program's configuration before load (libbpf's `bpf_program__set_*`).
#[napi(object)]
pub struct ProgramOptions {
    /// `bpf_program__set_autoload`: false leaves the program out of the load.
    pub autoload: Option<bool>,
    /// `bpf_program__set_attach_target` (fentry/fexit/fmod_ret/tp_btf/lsm/iter; freplace's function).
    pub attach_target: Option<String>,
    /// freplace: the target program's fd (`bpf_program__set_attach_target`'s
    /// `attach_prog_fd`), duplicated here.
    pub attach_prog_fd: Option<f64>,
    /// `bpf_program__set_type`: a number (the facade turns libbpf's names into numbers).
    pub prog_type: Option<f64>,
    /// `bpf_program__set_expected_attach_type`: a number.
    pub expected_attach_type: Option<f64>,
}

impl LoadOptions {
    pub fn to_core(options: Option<LoadOptions>) -> Checked<core::LoadOptions> {
        let Some(o) = options else {
            return Ok(Default::default());
        };
        let mut globals: Vec<(String, core::GlobalValue)> = o
            .globals
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, core::GlobalValue::Bytes(v.to_vec())))
            .collect();
        for (name, v) in o.int_globals.unwrap_or_default() {
            let value = i128_of(&format!("global '{name}'"), &v)?;
            globals.push((name, core::GlobalValue::Int(value)));
        }
        Ok(core::LoadOptions {
            globals,
            btf_path: o.btf_path.map(Into::into),
            pin_path: o.pin_path.map(Into::into),
            maps: o
                .maps
                .unwrap_or_default()
                .into_iter()
                .map(|(name, m)| Ok((m.to_core(&name)?, name)))
                .map(|r: Checked<_>| r.map(|(config, name)| (name, config)))
                .collect::<Checked<_>>()?,
            programs: o
                .programs
                .unwrap_or_default()
                .into_iter()
                .map(|(name, p)| {
                    let u32_of = |param: &str, v: Option<f64>| {
                        v.map(|v| {
                            int_of(&format!("program '{name}' {param}"), v, 0, u32::MAX.into())
                        })
                        .transpose()
                        .map(|v| v.map(|v| v as u32))
                    };
                    let attach_prog = p
                        .attach_prog_fd
                        .map(|v| {
                            let param = format!("program '{name}' attachTarget program");
                            let fd = int_of(&param, v, 0, i32::MAX.into())?;
                            core::attach::freplace::dup_prog_fd(&param, fd).map(Arc::new)
                        })
                        .transpose()?;
                    let config = core::ProgramConfig {
                        autoload: p.autoload,
                        attach_prog,
                        prog_type: u32_of("type", p.prog_type)?,
                        expected_attach_type: u32_of("expectedAttachType", p.expected_attach_type)?,
                        attach_target: p.attach_target,
                    };
                    Ok((name, config))
                })
                .collect::<Checked<_>>()?,
        })
    }
}

#[napi(object)]
pub struct UprobeOptions {
    /// Path, or a name looked up in PATH (programs) or the library folders (`libc.so.6`).
    pub binary: String,
    pub symbol: Option<String>,
    /// Offset added to the symbol, or a file offset when no symbol is given.
    pub offset: Option<BigInt>,
    /// Only this process (default: every process running the binary).
    pub pid: Option<f64>,
    pub retprobe: Option<bool>,
    pub cookie: Option<BigInt>,
}

#[napi(object)]
pub struct KprobeOptions {
    pub symbol: String,
    pub offset: Option<BigInt>,
    pub retprobe: Option<bool>,
    pub cookie: Option<BigInt>,
}

/// Batch attach through kprobe_multi (one perf kprobe per function where the kernel lacks it).
#[napi(object)]
pub struct KprobeMultiOptions {
    /// A glob (`'vfs_*'`); with neither it nor `names` nor `addresses`: every traceable function.
    pub pattern: Option<String>,
    pub names: Option<Vec<String>>,
    pub addresses: Option<Vec<BigInt>>,
    /// One per target; default: the target's index.
    pub cookies: Option<Vec<BigInt>>,
    pub retprobe: Option<bool>,
    pub session: Option<bool>,
    /// Only this module's functions (`'vmlinux'` for the kernel proper).
    pub module: Option<String>,
    /// Fail instead of leaving out (in `skipped`) what cannot be attached.
    pub strict: Option<bool>,
    /// false: UNSUPPORTED instead of the per-target fallback (default true).
    pub fallback: Option<bool>,
    /// Use the per-target fallback even where the multi link exists (comparisons, tests).
    pub force_fallback: Option<bool>,
}

/// Batch attach through uprobe_multi (one perf uprobe per target where the kernel lacks it).
#[napi(object)]
pub struct UprobeMultiOptions {
    pub binary: String,
    pub pattern: Option<String>,
    pub names: Option<Vec<String>>,
    pub offsets: Option<Vec<BigInt>>,
    pub pid: Option<f64>,
    pub cookies: Option<Vec<BigInt>>,
    pub retprobe: Option<bool>,
    pub session: Option<bool>,
    /// Also attach the compiler's clones: `name.part.N`, `name.cold`, `name.isra.N`, `name.constprop.N`.
    pub include_clones: Option<bool>,
    pub fallback: Option<bool>,
    pub force_fallback: Option<bool>,
}

/// A USDT probe: every site of `provider:name` in `binary`.
#[napi(object)]
pub struct UsdtOptions {
    pub binary: String,
    pub provider: String,
    pub name: String,
    /// Only this process.
    pub pid: Option<f64>,
    /// What the program's `bpf_usdt_cookie()` returns.
    pub cookie: Option<BigInt>,
    /// One perf uprobe per site even where uprobe_multi exists (comparisons, tests).
    pub force_fallback: Option<bool>,
    /// Fill `__bpf_usdt_ip_to_spec_id` as on kernels without BPF cookies (tests).
    pub force_address_lookup: Option<bool>,
}

/// Batch attach through tracing_multi (one fentry/fexit program per function where the kernel lacks it).
#[napi(object)]
pub struct TracingMultiOptions {
    pub pattern: Option<String>,
    pub names: Option<Vec<String>>,
    pub btf_ids: Option<Vec<u32>>,
    /// A kernel module's functions (`'overlay'`) instead of vmlinux's.
    pub module: Option<String>,
    pub cookies: Option<Vec<BigInt>>,
    pub fallback: Option<bool>,
    pub force_fallback: Option<bool>,
}

/// The defaults of every batch attach, in one place.
pub const DEFAULT_FALLBACK: bool = true;

/// A batch attach by kind, converted and checked, ready to run on any thread.
pub enum MultiRequest {
    Kprobe(core::attach::kprobe_multi::KprobeMultiOptions<'static>),
    Uprobe {
        binary: String,
        options: UprobeChecked,
    },
    Tracing(core::attach::tracing_multi::TracingMultiOptions<'static>),
    Usdt(UsdtChecked),
}

/// USDT options, checked, without borrows.
pub struct UsdtChecked {
    binary: String,
    provider: String,
    name: String,
    pid: Option<i32>,
    cookie: u64,
    force_fallback: bool,
    force_address_lookup: bool,
}

/// uprobe_multi options without the borrowed binary path.
pub struct UprobeChecked {
    selection: Option<Selection>,
    offsets: Option<Vec<u64>>,
    pid: Option<i32>,
    cookies: Option<Vec<u64>>,
    retprobe: bool,
    session: bool,
    include_clones: bool,
    fallback: bool,
    force_fallback: bool,
}

impl MultiRequest {
    pub fn kprobe(o: KprobeMultiOptions) -> Checked<Self> {
        Ok(MultiRequest::Kprobe(
            core::attach::kprobe_multi::KprobeMultiOptions {
                selection: selection(&o.pattern, &o.names),
                addresses: u64s("addresses", o.addresses.as_deref())?,
                cookies: u64s("cookies", o.cookies.as_deref())?,
                retprobe: o.retprobe.unwrap_or(false),
                session: o.session.unwrap_or(false),
                module: o.module,
                strict: o.strict.unwrap_or(false),
                fallback: o.fallback.unwrap_or(DEFAULT_FALLBACK),
                force_fallback: o.force_fallback.unwrap_or(false),
                progress: None,
            },
        ))
    }

    pub fn uprobe(o: UprobeMultiOptions) -> Checked<Self> {
        Ok(MultiRequest::Uprobe {
            options: UprobeChecked {
                selection: selection(&o.pattern, &o.names),
                offsets: u64s("offsets", o.offsets.as_deref())?,
                pid: pid_of(o.pid)?,
                cookies: u64s("cookies", o.cookies.as_deref())?,
                retprobe: o.retprobe.unwrap_or(false),
                session: o.session.unwrap_or(false),
                include_clones: o.include_clones.unwrap_or(false),
                fallback: o.fallback.unwrap_or(DEFAULT_FALLBACK),
                force_fallback: o.force_fallback.unwrap_or(false),
            },
            binary: o.binary,
        })
    }

    pub fn tracing(o: TracingMultiOptions) -> Checked<Self> {
        Ok(MultiRequest::Tracing(
            core::attach::tracing_multi::TracingMultiOptions {
                selection: selection(&o.pattern, &o.names),
                btf_ids: o.btf_ids,
                module: o.module,
                cookies: u64s("cookies", o.cookies.as_deref())?,
                fallback: o.fallback.unwrap_or(DEFAULT_FALLBACK),
                force_fallback: o.force_fallback.unwrap_or(false),
                btf_path: None,
                progress: None,
            },
        ))
    }

    /// Runs the attach; `progress` reports and answers whether to go on.
    pub fn usdt(o: UsdtOptions) -> Checked<Self> {
        Ok(MultiRequest::Usdt(UsdtChecked {
            pid: pid_of(o.pid)?,
            cookie: opt_u64("cookie", o.cookie.as_ref())?.unwrap_or(0),
            force_fallback: o.force_fallback.unwrap_or(false),
            force_address_lookup: o.force_address_lookup.unwrap_or(false),
            binary: o.binary,
            provider: o.provider,
            name: o.name,
        }))
    }

    /// Attaches `prog` of `obj` (USDT writes its argument specs into the object's maps).
    pub fn attach(
        &self,
        obj: &core::Object,
        prog: &str,
        btf_path: Option<&std::path::Path>,
        progress: Option<core::attach::multi::Progress<'_>>,
    ) -> core::Result<core::attach::multi::MultiLink> {
        use core::attach::{kprobe_multi, tracing_multi, uprobe_multi};
        let prog = obj.program(prog)?;
        match self {
            MultiRequest::Usdt(o) => core::usdt::attach_usdt(
                obj,
                prog,
                &core::usdt::UsdtOptions {
                    binary: &o.binary,
                    provider: &o.provider,
                    name: &o.name,
                    pid: o.pid,
                    cookie: o.cookie,
                    force_fallback: o.force_fallback,
                    force_address_lookup: o.force_address_lookup,
                    progress,
                },
            ),
            MultiRequest::Kprobe(o) => kprobe_multi::attach_kprobe_multi(
                prog,
                &kprobe_multi::KprobeMultiOptions {
                    selection: o.selection.clone(),
                    addresses: o.addresses.clone(),
                    cookies: o.cookies.clone(),
                    module: o.module.clone(),
                    progress,
                    ..*o
                },
            ),
            MultiRequest::Uprobe { binary, options: o } => uprobe_multi::attach_uprobe_multi(
                prog,
                &uprobe_multi::UprobeMultiOptions {
                    binary,
                    selection: o.selection.clone(),
                    offsets: o.offsets.clone(),
                    pid: o.pid,
                    cookies: o.cookies.clone(),
                    retprobe: o.retprobe,
                    session: o.session,
                    include_clones: o.include_clones,
                    fallback: o.fallback,
                    force_fallback: o.force_fallback,
                    progress,
                },
            ),
            MultiRequest::Tracing(o) => tracing_multi::attach_tracing_multi(
                prog,
                &tracing_multi::TracingMultiOptions {
                    selection: o.selection.clone(),
                    btf_ids: o.btf_ids.clone(),
                    module: o.module.clone(),
                    cookies: o.cookies.clone(),
                    btf_path,
                    progress,
                    ..*o
                },
            ),
        }
    }
}

/// A `perf_event` program on sampling perf events.
#[napi(object)]
pub struct PerfEventOptions {
    /// A perf name (`'cpu-clock'`, `'cycles'`, ...); or `event_type` and `config`.
    pub event: Option<String>,
    pub event_type: Option<u32>,
    pub config: Option<BigInt>,
    /// Samples per second; or `period`.
    pub frequency: Option<BigInt>,
    /// One sample every `period` events (nanoseconds for the clocks).
    pub period: Option<BigInt>,
    pub cpu: Option<f64>,
    pub pid: Option<f64>,
    /// A cgroup v2 directory.
    pub cgroup: Option<String>,
}

impl PerfEventOptions {
    pub fn to_core(&self) -> Checked<core::attach::sampling::PerfEventOptions<'_>> {
        use core::attach::sampling::{PerfEvent, Sampling};
        let event = match (&self.event, self.event_type) {
            (Some(name), None) => PerfEvent::Named(name.clone()),
            (None, Some(type_)) => PerfEvent::Raw {
                type_,
                config: opt_u64("config", self.config.as_ref())?.unwrap_or(0),
            },
            _ => {
                return Err(core::Error::new(
                    core::Code::Einval,
                    "perf event options: give event (a name) or type and config",
                ))
            }
        };
        let sampling = match (
            opt_u64("frequency", self.frequency.as_ref())?,
            opt_u64("period", self.period.as_ref())?,
        ) {
            (Some(hz), None) => Sampling::Frequency(hz),
            (None, Some(n)) => Sampling::Period(n),
            _ => {
                return Err(core::Error::new(
                    core::Code::Einval,
                    "perf event options: give frequency or period (one of them)",
                ))
            }
        };
        Ok(core::attach::sampling::PerfEventOptions {
            event,
            sampling,
            cpu: self
                .cpu
                .map(|c| int_of("cpu", c, 0, i32::MAX as i64).map(|c| c as u32))
                .transpose()?,
            pid: pid_of(self.pid)?,
            cgroup: self.cgroup.as_deref().map(std::path::Path::new),
        })
    }
}
