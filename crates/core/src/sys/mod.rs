//! Raw `bpf(2)` and `perf_event_open(2)` calls. Each command has its own `#[repr(C)]`
//! attribute struct so new kernel fields (tracing_multi, sessions) need no bindgen update;
//! the kernel accepts a shorter `bpf_attr` as long as the bytes it knows are given.

pub mod consts;
pub mod names;

use std::ffi::CStr;
use std::io;
use std::mem::size_of;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

pub use consts::*;

/// Calls `bpf(cmd, attr, sizeof attr)` and returns the raw result.
pub fn bpf<T>(cmd: u32, attr: &mut T) -> io::Result<i64> {
    // SAFETY: `attr` is a live, properly sized `#[repr(C)]` struct; the kernel reads
    // and writes at most `size_of::<T>()` bytes of it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut T as *mut libc::c_void,
            size_of::<T>() as libc::c_long,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Like [`bpf`] for commands that return a new file descriptor.
pub fn bpf_fd<T>(cmd: u32, attr: &mut T) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: on success these commands return a fresh fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn ptr<T>(p: *const T) -> u64 {
    p as usize as u64
}

#[repr(C)]
#[derive(Default)]
pub struct ProgLoadAttr {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; 16],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
    pub prog_btf_fd: u32,
    pub func_info_rec_size: u32,
    pub func_info: u64,
    pub func_info_cnt: u32,
    pub line_info_rec_size: u32,
    pub line_info: u64,
    pub line_info_cnt: u32,
    pub attach_btf_id: u32,
    pub attach_btf_obj_fd: u32,
    pub core_relo_cnt: u32,
    pub fd_array: u64,
    pub core_relos: u64,
    pub core_relo_rec_size: u32,
    pub log_true_size: u32,
}

#[repr(C)]
#[derive(Default)]
pub struct MapElemAttr {
    pub map_fd: u32,
    pub _pad: u32,
    pub key: u64,
    pub value_or_next_key: u64,
    pub flags: u64,
}

/// `BPF_MAP_*_BATCH`'s attribute (`bpf_attr.batch`). `in_batch`/`out_batch` point at an
/// opaque cursor (a hash map's bucket index, an array's last key); `count` is the room in
/// `keys`/`values` going in and the elements done coming out.
#[repr(C)]
#[derive(Default)]
pub struct MapBatchAttr {
    pub in_batch: u64,
    pub out_batch: u64,
    pub keys: u64,
    pub values: u64,
    pub count: u32,
    pub map_fd: u32,
    pub elem_flags: u64,
    pub flags: u64,
}

#[repr(C)]
#[derive(Default)]
pub struct ObjAttr {
    pub pathname: u64,
    pub bpf_fd: u32,
    pub file_flags: u32,
}

#[repr(C)]
#[derive(Default)]
pub struct FreezeAttr {
    pub map_fd: u32,
}

#[repr(C)]
#[derive(Default)]
pub struct RawTpOpenAttr {
    pub name: u64,
    pub prog_fd: u32,
    pub _pad: u32,
    pub cookie: u64,
}

#[repr(C)]
#[derive(Default)]
pub struct BtfLoadAttr {
    pub btf: u64,
    pub btf_log_buf: u64,
    pub btf_size: u32,
    pub btf_log_size: u32,
    pub btf_log_level: u32,
    /// Written by 6.4+. Declared so the struct has no padding: Rust leaves padding bytes
    /// undefined, and kernels before 6.4 refuse non-zero bytes past `btf_log_level`.
    pub btf_log_true_size: u32,
}

#[repr(C)]
#[derive(Default)]
pub struct InfoByFdAttr {
    pub bpf_fd: u32,
    pub info_len: u32,
    pub info: u64,
}

/// `BPF_*_GET_NEXT_ID` and `BPF_*_GET_FD_BY_ID`: `id` is the start id or the object id.
#[repr(C)]
#[derive(Default)]
pub struct IdAttr {
    pub id: u32,
    pub next_id: u32,
    pub open_flags: u32,
}

/// `struct bpf_btf_info`.
#[repr(C)]
#[derive(Default)]
pub struct BtfInfo {
    pub btf: u64,
    pub btf_size: u32,
    pub id: u32,
    pub name: u64,
    pub name_len: u32,
    pub kernel_btf: u32,
}

/// The id after `id` of the objects `cmd` walks (`BPF_BTF_GET_NEXT_ID`...), `None` at the end.
pub fn next_id(cmd: u32, id: u32) -> io::Result<Option<u32>> {
    let mut attr = IdAttr {
        id,
        ..Default::default()
    };
    match bpf(cmd, &mut attr) {
        Ok(_) => Ok(Some(attr.next_id)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `BPF_LINK_CREATE`: the fixed head, then a 48-byte union whose layout depends on
/// `attach_type` (perf_event cookie, kprobe_multi, uprobe_multi, tracing, tracing_multi).
#[repr(C)]
#[derive(Default)]
pub struct LinkCreateAttr {
    pub prog_fd: u32,
    pub target_fd: u32,
    pub attach_type: u32,
    pub flags: u32,
    pub u: [u64; 6],
}

impl LinkCreateAttr {
    pub fn new(prog_fd: RawFd, target_fd: RawFd, attach_type: u32) -> Self {
        LinkCreateAttr {
            prog_fd: prog_fd as u32,
            target_fd: target_fd as u32,
            attach_type,
            ..Default::default()
        }
    }
}

/// `BPF_PROG_TEST_RUN`'s attribute (`bpf_attr.test`).
#[repr(C)]
#[derive(Default)]
pub struct TestRunAttr {
    pub prog_fd: u32,
    pub retval: u32,
    pub data_size_in: u32,
    pub data_size_out: u32,
    pub data_in: u64,
    pub data_out: u64,
    pub repeat: u32,
    pub duration: u32,
    pub ctx_size_in: u32,
    pub ctx_size_out: u32,
    pub ctx_in: u64,
    pub ctx_out: u64,
    pub flags: u32,
    pub cpu: u32,
    pub batch_size: u32,
    pub _pad: u32,
}

/// `BPF_ITER_CREATE`'s attribute.
#[repr(C)]
#[derive(Default)]
pub struct IterCreateAttr {
    pub link_fd: u32,
    pub flags: u32,
}

/// The head of `struct bpf_link_info`; the per-type union follows.
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct LinkInfo {
    pub type_: u32,
    pub id: u32,
    pub prog_id: u32,
    pub _pad: u32,
    pub u: [u64; 8],
}

/// The leading part of `struct bpf_prog_info` that we read.
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct ProgInfo {
    pub type_: u32,
    pub id: u32,
    pub tag: [u8; 8],
    pub jited_prog_len: u32,
    pub xlated_prog_len: u32,
    pub jited_prog_insns: u64,
    pub xlated_prog_insns: u64,
    pub load_time: u64,
    pub created_by_uid: u32,
    pub nr_map_ids: u32,
    pub map_ids: u64,
    pub name: [u8; 16],
    pub ifindex: u32,
    pub gpl_compatible_etc: u32,
    pub netns_dev: u64,
    pub netns_ino: u64,
    pub nr_jited_ksyms: u32,
    pub nr_jited_func_lens: u32,
    pub jited_ksyms: u64,
    pub jited_func_lens: u64,
    pub btf_id: u32,
    pub func_info_rec_size: u32,
    pub func_info: u64,
    pub nr_func_info: u32,
    pub nr_line_info: u32,
    pub line_info: u64,
    pub jited_line_info: u64,
    pub nr_jited_line_info: u32,
    pub line_info_rec_size: u32,
    pub jited_line_info_rec_size: u32,
    pub nr_prog_tags: u32,
    pub prog_tags: u64,
    pub run_time_ns: u64,
    pub run_cnt: u64,
    pub recursion_misses: u64,
    pub verified_insns: u32,
    pub attach_btf_obj_id: u32,
    pub attach_btf_id: u32,
    /// Declared so the struct has no padding: a kernel whose `bpf_prog_info` ends at
    /// `attach_btf_id` refuses (E2BIG) non-zero bytes past it.
    pub _pad: u32,
}

pub fn obj_info<T: Default>(fd: RawFd) -> io::Result<T> {
    let mut info = T::default();
    let mut attr = InfoByFdAttr {
        bpf_fd: fd as u32,
        info_len: size_of::<T>() as u32,
        info: ptr(&mut info as *mut T),
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info)
}

pub fn map_freeze(fd: RawFd) -> io::Result<()> {
    bpf(BPF_MAP_FREEZE, &mut FreezeAttr { map_fd: fd as u32 }).map(drop)
}

pub fn obj_pin(fd: RawFd, path: &CStr) -> io::Result<()> {
    let mut attr = ObjAttr {
        pathname: ptr(path.as_ptr()),
        bpf_fd: fd as u32,
        file_flags: 0,
    };
    bpf(BPF_OBJ_PIN, &mut attr).map(drop)
}

pub fn obj_get(path: &CStr) -> io::Result<OwnedFd> {
    let mut attr = ObjAttr {
        pathname: ptr(path.as_ptr()),
        ..Default::default()
    };
    bpf_fd(BPF_OBJ_GET, &mut attr)
}

/// `struct perf_event_attr` up to `config2` plus the fields we need.
#[repr(C)]
#[derive(Default)]
pub struct PerfEventAttr {
    pub type_: u32,
    pub size: u32,
    pub config: u64,
    pub sample_period: u64,
    pub sample_type: u64,
    pub read_format: u64,
    pub flags: u64,
    pub wakeup_events: u32,
    pub bp_type: u32,
    pub config1: u64,
    pub config2: u64,
}

pub const PERF_TYPE_HARDWARE: u32 = 0;
pub const PERF_TYPE_SOFTWARE: u32 = 1;
pub const PERF_TYPE_TRACEPOINT: u32 = 2;
pub const PERF_FLAG_PID_CGROUP: u64 = 4;
pub const PERF_FLAG_FD_CLOEXEC: u64 = 8;
/// `perf_event_attr.freq`: `sample_period` holds a frequency in Hz.
pub const PERF_ATTR_FLAG_FREQ: u64 = 1 << 10;
pub const PERF_EVENT_IOC_ENABLE: u64 = 0x2400;
pub const PERF_EVENT_IOC_SET_BPF: u64 = 0x40042408;

pub fn perf_event_open(attr: &mut PerfEventAttr, pid: i32) -> io::Result<OwnedFd> {
    // cpu = -1 with a pid, cpu 0 for all processes: the kernel requires one of them.
    let cpu = if pid == -1 { 0 } else { -1 };
    perf_event_open_on(attr, pid, cpu, 0)
}

/// `perf_event_open(attr, pid, cpu, -1, flags | PERF_FLAG_FD_CLOEXEC)`; with
/// `PERF_FLAG_PID_CGROUP` in `flags`, `pid` is a cgroup directory's fd.
pub fn perf_event_open_on(
    attr: &mut PerfEventAttr,
    pid: i32,
    cpu: i32,
    flags: u64,
) -> io::Result<OwnedFd> {
    attr.size = size_of::<PerfEventAttr>() as u32;
    // SAFETY: `attr` is a valid perf_event_attr prefix of the declared size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr as *mut PerfEventAttr,
            pid,
            cpu,
            -1,
            flags | PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd from the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `BPF_MAP_CREATE`, up to `map_extra` (5.16): the kernel's `union bpf_attr` layout, field
/// for field. Older kernels take it as long as the fields they do not know are zero.
#[repr(C)]
#[derive(Default)]
pub struct MapCreateAttr {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: u32,
    /// Used by the kernel only with `BPF_F_NUMA_NODE` in `map_flags`.
    pub numa_node: u32,
    pub map_name: [u8; 16],
    pub map_ifindex: u32,
    pub btf_fd: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub btf_vmlinux_value_type_id: u32,
    /// Per map type: a bloom filter's number of hash functions (low 4 bits).
    pub map_extra: u64,
}

/// The leading part of `struct bpf_map_info` that we read.
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct MapInfo {
    pub type_: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub name: [u8; 16],
}

/// `pidfd_open(2)`: a task storage map's key from user space.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd from the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// One BPF instruction, encoded by hand for the feature probes.
pub const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    let off = off as u16 as u64;
    let imm = imm as u32 as u64;
    (code as u64) | (((dst & 0xf) | ((src & 0xf) << 4)) as u64) << 8 | off << 16 | imm << 32
}

pub const INSN_MOV64_R0_0: u64 = insn(0xb7, 0, 0, 0, 0);
pub const INSN_EXIT: u64 = insn(0x95, 0, 0, 0, 0);
pub const fn insn_call(helper: i32) -> u64 {
    insn(0x85, 0, 0, 0, helper)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_encoding() {
        // mov64 r0, 0 / exit / call 174, as bytes in little-endian order.
        assert_eq!(INSN_MOV64_R0_0.to_le_bytes(), [0xb7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(INSN_EXIT.to_le_bytes(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(insn_call(174).to_le_bytes(), [0x85, 0, 0, 0, 174, 0, 0, 0]);
        assert_eq!(
            insn(0xbf, 1, 2, -1, -1).to_le_bytes(),
            [0xbf, 0x21, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn attrs_have_no_padding() {
        // Padding bytes are undefined in Rust, and the kernel refuses non-zero bytes it
        // does not know: every byte of an attr must be a declared field.
        assert_eq!(std::mem::size_of::<BtfLoadAttr>(), 8 + 8 + 4 * 4);
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 144);
        assert_eq!(std::mem::size_of::<MapElemAttr>(), 32);
        assert_eq!(std::mem::size_of::<MapBatchAttr>(), 56);
        assert_eq!(std::mem::size_of::<RawTpOpenAttr>(), 24);
        assert_eq!(std::mem::size_of::<ObjAttr>(), 16);
        assert_eq!(std::mem::size_of::<InfoByFdAttr>(), 16);
        assert_eq!(std::mem::size_of::<MapCreateAttr>(), 72);
        assert_eq!(std::mem::size_of::<MapInfo>(), 40);
        assert_eq!(std::mem::size_of::<IdAttr>(), 12);
        assert_eq!(std::mem::size_of::<BtfInfo>(), 32);
    }

    #[test]
    fn attr_layouts_match_the_kernel() {
        assert_eq!(std::mem::size_of::<LinkCreateAttr>(), 64);
        assert_eq!(std::mem::offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(std::mem::offset_of!(MapCreateAttr, btf_fd), 48);
        assert_eq!(
            std::mem::offset_of!(MapCreateAttr, btf_vmlinux_value_type_id),
            60
        );
        assert_eq!(std::mem::offset_of!(MapCreateAttr, map_extra), 64);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, attach_btf_id), 108);
        assert_eq!(std::mem::offset_of!(ProgInfo, run_cnt), 200);
        assert_eq!(std::mem::size_of::<ProgInfo>(), 232);
        assert_eq!(std::mem::size_of::<PerfEventAttr>(), 72);
    }
}
