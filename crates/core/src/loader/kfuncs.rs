//! Kernel symbols an object declares `extern … __ksym`, linked the way libbpf links them,
//! before aya-obj (which knows no externs) reads the object:
//! - a call to a kernel function (kfunc) gets the kfunc's vmlinux BTF id;
//! - `&kfunc` (what `bpf_ksym_exists()` tests) and a typeless variable (`extern const void
//!   sym __ksym`) load the symbol's address from /proc/kallsyms;
//! - a typed variable (`extern const struct rq runqueues __ksym`, per-CPU variables for
//!   `bpf_per_cpu_ptr`) loads a `BPF_PSEUDO_BTF_ID` of its vmlinux BTF VAR;
//! - kfuncs and typed variables a kernel module has (in its BTF, not vmlinux's) are
//!   named by the module's BTF object as well: a call by its index in the program's
//!   `fd_array`, a variable by the fd itself (the kernel's two ways; libbpf's too);
//! - a `__weak` one the kernel lacks is 0, and a call to it is poisoned the way libbpf
//!   does (an unknown helper the verifier only refuses if the call is reachable).
//!
//! Then the object's BTF loses what the kernel refuses in it (extern linkage, entries of
//! the `.ksyms` DATASEC).

use std::cell::OnceCell;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use object::read::elf::{ElfFile64, ElfSymbol64};
use object::{LittleEndian, Object as _, ObjectSection, ObjectSymbol, RelocationTarget};

use crate::btf::kinds::{KIND_DATASEC, KIND_FUNC, KIND_PTR, KIND_TYPEDEF, KIND_VAR};
use crate::btf_index::{BtfIndex, DatasecEntry};
use crate::error::{bad_object, Code, Error, Result};
use crate::symbols::kernel::Kallsyms;

/// `BPF_JMP | BPF_CALL`
const OP_CALL: u8 = 0x85;
/// `BPF_LD | BPF_IMM | BPF_DW`: a 16-byte load of a 64-bit immediate.
const OP_LD_IMM64: u8 = 0x18;
const LD_IMM64_LEN: usize = 16;
const INSN_LEN: usize = 8;
/// `src_reg` of a call to a kernel function by BTF id.
const PSEUDO_KFUNC_CALL: u8 = 2;
/// `src_reg` of an `ld_imm64` of a kernel variable by BTF id.
const PSEUDO_BTF_ID: u8 = 3;
/// libbpf's `POISON_CALL_KFUNC_BASE`: helper ids from here on do not exist, so a call
/// the verifier reaches fails naming it; calls it proves dead are dropped.
const POISON_CALL_KFUNC_BASE: i32 = 2_002_000_000;
const LINKAGE_EXTERN: u32 = 2;

/// A kernel BTF id, and the module whose BTF holds it (`None`: vmlinux).
#[derive(Clone, Debug, PartialEq)]
pub struct KernelId {
    pub id: u32,
    pub module: Option<String>,
}

/// What the running kernel says about the symbols externs name.
pub trait KernelSymbols {
    /// The BTF id of a FUNC, in vmlinux or else in a module.
    fn func_id(&self, name: &str) -> Result<Option<KernelId>>;
    /// The BTF id of a VAR, in vmlinux or else in a module.
    fn var_id(&self, name: &str) -> Result<Option<KernelId>>;
    /// The symbol's address.
    fn address(&self, name: &str) -> Result<Option<u64>>;
    /// A module's BTF object.
    fn module_btf(&self, module: &str) -> Result<OwnedFd>;
}

/// The kernel this process runs on (its BTF from `btf_path`, default vmlinux);
/// /proc/kallsyms is read once, on the first address asked for, and the modules' BTF
/// on the first name vmlinux lacks.
pub struct RunningKernel<'a> {
    btf_path: Option<&'a Path>,
    kallsyms: OnceCell<Kallsyms>,
    modules: OnceCell<Vec<(String, BtfIndex)>>,
}

impl<'a> RunningKernel<'a> {
    pub fn new(btf_path: Option<&'a Path>) -> Self {
        RunningKernel {
            btf_path,
            kallsyms: OnceCell::new(),
            modules: OnceCell::new(),
        }
    }

    /// The loaded modules' BTF. None for a `btf_path` of its own: that BTF describes
    /// another kernel than the modules here, and a module's BTF only makes sense on top
    /// of its own vmlinux.
    fn modules(&self) -> Result<&[(String, BtfIndex)]> {
        if let Some(m) = self.modules.get() {
            return Ok(m);
        }
        let mut found = Vec::new();
        if self.btf_path.is_none() {
            let dir = Path::new(crate::btf::VMLINUX)
                .parent()
                .unwrap_or(Path::new("/sys/kernel/btf"));
            // No directory: a kernel without module BTF (before 5.11).
            let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
            for e in entries {
                let name = e.file_name().to_string_lossy().into_owned();
                if dir.join(&name) == Path::new(crate::btf::VMLINUX) {
                    continue;
                }
                // A module unloaded since the listing is simply not there.
                if let Ok(index) = BtfIndex::module(&name) {
                    found.push((name, index));
                }
            }
            found.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Ok(self.modules.get_or_init(|| found))
    }

    fn find(&self, by: &dyn Fn(&BtfIndex) -> Option<u32>) -> Result<Option<KernelId>> {
        if let Some(id) = by(&*BtfIndex::kernel(self.btf_path)?) {
            return Ok(Some(KernelId { id, module: None }));
        }
        Ok(self.modules()?.iter().find_map(|(m, btf)| {
            by(btf).map(|id| KernelId {
                id,
                module: Some(m.clone()),
            })
        }))
    }
}

impl KernelSymbols for RunningKernel<'_> {
    fn func_id(&self, name: &str) -> Result<Option<KernelId>> {
        self.find(&|btf| btf.func_ids(name).first().copied())
    }

    fn var_id(&self, name: &str) -> Result<Option<KernelId>> {
        self.find(&|btf| btf.var_id(name))
    }

    fn address(&self, name: &str) -> Result<Option<u64>> {
        if self.kallsyms.get().is_none() {
            let _ = self.kallsyms.set(Kallsyms::read()?);
        }
        Ok(self.kallsyms.get().and_then(|k| k.address(name)))
    }

    fn module_btf(&self, module: &str) -> Result<OwnedFd> {
        crate::btf::module_btf_fd(module)
    }
}

/// A kernel with every symbol, in vmlinux at BTF id 0 and address 0, for an object
/// described and never loaded (`inspect`): externs are linked as on a kernel that has them
/// all, whatever this machine's kernel has. Only instruction immediates differ from a real
/// link, and nothing read from the object afterwards depends on them.
pub struct AnyKernel;

impl KernelSymbols for AnyKernel {
    fn func_id(&self, _: &str) -> Result<Option<KernelId>> {
        Ok(Some(KernelId {
            id: 0,
            module: None,
        }))
    }

    fn var_id(&self, name: &str) -> Result<Option<KernelId>> {
        self.func_id(name)
    }

    fn address(&self, _: &str) -> Result<Option<u64>> {
        Ok(Some(0))
    }

    /// Never asked: every symbol is in vmlinux.
    fn module_btf(&self, module: &str) -> Result<OwnedFd> {
        Err(Error::new(
            Code::Internal,
            format!("module '{module}' asked of the placeholder kernel"),
        ))
    }
}

/// The module BTF objects that linked instructions name. They stay open while the
/// object's programs may be loaded: a variable's instruction holds the fd's number, and
/// a kfunc call indexes `fd_array`, passed with every program load.
#[derive(Default)]
pub struct ModuleBtfs {
    modules: Vec<(String, OwnedFd)>,
    /// `fd_array[0]` is never read: a kfunc call's `off` 0 means vmlinux.
    fd_array: Vec<RawFd>,
}

impl ModuleBtfs {
    /// The `fd_array` for `BPF_PROG_LOAD`; `None` when no kfunc call names a module.
    pub fn fd_array(&self) -> Option<&[RawFd]> {
        (!self.fd_array.is_empty()).then_some(self.fd_array.as_slice())
    }

    /// The module's BTF fd, opened on first use.
    fn fd(&mut self, module: &str, kernel: &dyn KernelSymbols) -> Result<RawFd> {
        if let Some((_, fd)) = self.modules.iter().find(|(m, _)| m == module) {
            return Ok(fd.as_raw_fd());
        }
        let fd = kernel.module_btf(module)?;
        let raw = fd.as_raw_fd();
        self.modules.push((module.to_string(), fd));
        Ok(raw)
    }

    /// The module's index in `fd_array`, for a kfunc call's `off`.
    fn call_index(&mut self, module: &str, kernel: &dyn KernelSymbols) -> Result<u16> {
        let fd = self.fd(module, kernel)?;
        if self.fd_array.is_empty() {
            self.fd_array.push(0);
        }
        let index = match self.fd_array.iter().skip(1).position(|&f| f == fd) {
            Some(i) => i + 1,
            None => {
                self.fd_array.push(fd);
                self.fd_array.len() - 1
            }
        };
        // A call's `off` is an s16: more modules than that cannot be named.
        let index = u16::try_from(index)
            .ok()
            .filter(|&i| i <= i16::MAX as u16)
            .ok_or_else(|| bad_object("the object calls kfuncs of too many kernel modules"))?;
        Ok(index)
    }
}

/// One use of an extern in program code.
struct Use {
    /// File offset of the instruction.
    at: usize,
    name: String,
    weak: bool,
    /// `true`: a call; `false`: an `ld_imm64` of its address.
    call: bool,
}

/// Links every `__ksym` extern in `bytes` (see the module's comment). Objects without
/// externs are left as they are (and the kernel is not asked). Externs `others` claims
/// (`.kconfig` variables) are left to it. Returns the module BTF objects the linked
/// instructions name.
pub fn link(
    bytes: &mut [u8],
    others: &dyn Fn(&str) -> bool,
    kernel: &dyn KernelSymbols,
) -> Result<ModuleBtfs> {
    let mut modules = ModuleBtfs::default();
    let (uses, btf) = find_uses(bytes, others)?;
    if uses.is_empty() {
        return Ok(modules);
    }
    let declared: HashMap<String, DatasecEntry> = match btf {
        Some((start, end)) => BtfIndex::parse(bytes[start..end].to_vec())?
            .datasec_entries(".ksyms")
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect(),
        None => HashMap::new(),
    };
    for u in &uses {
        // libbpf's rule too: an extern is linked by what its BTF says it is.
        let declared = declared.get(&u.name).ok_or_else(|| {
            bad_object(format!(
                "'{}' is an extern the object's BTF does not declare __ksym (or __kconfig)",
                u.name
            ))
        })?;
        let patch = resolve(u, declared, kernel, &mut modules)?;
        let len = if u.call { INSN_LEN } else { LD_IMM64_LEN };
        let insn = bytes
            .get_mut(u.at..u.at.saturating_add(len))
            .ok_or_else(|| bad_object(format!("a use of '{}' lies outside the file", u.name)))?;
        patch.write(insn);
    }
    if let Some((start, end)) = btf {
        drop_extern_btf(&mut bytes[start..end])?;
    }
    Ok(modules)
}

/// What an instruction that uses an extern becomes.
enum Patch {
    /// A kfunc by BTF id; `off`: 0 for vmlinux, else the module's `fd_array` index.
    KfuncCall { id: u32, off: u16 },
    /// A call to a `__weak` kfunc the kernel lacks.
    PoisonedCall,
    /// `ld_imm64` of a constant: an address, or 0 for a missing `__weak` symbol.
    Constant(u64),
    /// `ld_imm64` of a VAR by BTF id; `btf_fd`: 0 for vmlinux, else the module's BTF.
    BtfId { id: u32, btf_fd: RawFd },
}

impl Patch {
    fn write(&self, insn: &mut [u8]) {
        let src = |insn: &mut [u8], src: u8| insn[1] = (insn[1] & 0x0f) | (src << 4);
        match *self {
            Patch::KfuncCall { id, off } => {
                src(insn, PSEUDO_KFUNC_CALL);
                insn[2..4].copy_from_slice(&off.to_le_bytes());
                insn[4..8].copy_from_slice(&id.to_le_bytes());
            }
            Patch::PoisonedCall => {
                insn[1] = 0;
                insn[2..4].fill(0);
                insn[4..8].copy_from_slice(&POISON_CALL_KFUNC_BASE.to_le_bytes());
            }
            Patch::Constant(v) => {
                src(insn, 0);
                insn[4..8].copy_from_slice(&(v as u32).to_le_bytes());
                insn[12..16].copy_from_slice(&((v >> 32) as u32).to_le_bytes());
            }
            Patch::BtfId { id, btf_fd } => {
                src(insn, PSEUDO_BTF_ID);
                insn[4..8].copy_from_slice(&id.to_le_bytes());
                insn[12..16].copy_from_slice(&btf_fd.to_le_bytes());
            }
        }
    }
}

fn resolve(
    u: &Use,
    declared: &DatasecEntry,
    kernel: &dyn KernelSymbols,
    modules: &mut ModuleBtfs,
) -> Result<Patch> {
    let name = &u.name;
    let missing = |what: &str, why: &str| {
        Error::new(
            Code::Unsupported,
            format!(
                "the program uses {what} '{name}', which this kernel ({}) {why}; declare it \
                 __weak and test it with bpf_ksym_exists() to run without it",
                crate::features::features().kernel
            ),
        )
    };
    let typed_var = declared.kind == KIND_VAR && !declared.void;
    let found = if u.call {
        match kernel.func_id(name)? {
            Some(KernelId { id, module: None }) => Some(Patch::KfuncCall { id, off: 0 }),
            Some(KernelId {
                id,
                module: Some(m),
            }) => Some(Patch::KfuncCall {
                id,
                off: modules.call_index(&m, kernel)?,
            }),
            None => None,
        }
    } else if typed_var {
        // The verifier finds the variable's address by name in kallsyms: kernels built
        // without CONFIG_KALLSYMS_ALL list no data symbols, and so cannot take one.
        match kernel.var_id(name)? {
            Some(KernelId { id, module }) if kernel.address(name)?.is_some() => {
                let btf_fd = match module {
                    Some(m) => modules.fd(&m, kernel)?,
                    None => 0,
                };
                Some(Patch::BtfId { id, btf_fd })
            }
            Some(_) if !u.weak => {
                return Err(missing(
                    "kernel variable",
                    "cannot resolve: it is in the kernel's BTF but not in /proc/kallsyms \
                     (built without CONFIG_KALLSYMS_ALL)",
                ))
            }
            _ => None,
        }
    } else {
        kernel.address(name)?.map(Patch::Constant)
    };
    match found {
        Some(p) => Ok(p),
        None if u.weak && u.call => Ok(Patch::PoisonedCall),
        None if u.weak => Ok(Patch::Constant(0)),
        None if u.call => Err(missing("kernel function", "does not have in its BTF")),
        None if typed_var => Err(missing("kernel variable", "does not have in its BTF")),
        None => Err(missing(
            "kernel symbol",
            "does not list in /proc/kallsyms (data symbols need CONFIG_KALLSYMS_ALL)",
        )),
    }
}

/// The uses of externs in program code, and the file range of `.BTF`.
type Uses = (Vec<Use>, Option<(usize, usize)>);

fn find_uses(bytes: &[u8], others: &dyn Fn(&str) -> bool) -> Result<Uses> {
    let file = ElfFile64::<LittleEndian>::parse(bytes)
        .map_err(|e| bad_object(format!("not a 64-bit little-endian ELF object: {e}")))?;
    let mut uses = Vec::new();
    for_each_undefined_ref(&file, &mut |r| {
        let ((sec_off, sec_size), offset) = (r.section, r.offset);
        let name = r.symbol.name().unwrap_or("?").to_string();
        if others(&name) {
            return Ok(());
        }
        let at = sec_off
            .checked_add(offset)
            .and_then(|a| usize::try_from(a).ok())
            .unwrap_or(usize::MAX);
        let fits = |len: u64| offset.checked_add(len).is_some_and(|e| e <= sec_size);
        let op = bytes.get(at).copied().filter(|_| fits(INSN_LEN as u64));
        let call = match op {
            Some(OP_CALL) => true,
            Some(OP_LD_IMM64) if fits(LD_IMM64_LEN as u64) => false,
            _ => {
                return Err(bad_object(format!(
                    "'{name}' is an extern used by an instruction nodebpf cannot link (at \
                     section offset {offset:#x}): calls and address loads are supported"
                )))
            }
        };
        uses.push(Use {
            at,
            weak: r.symbol.is_weak(),
            name,
            call,
        });
        Ok(())
    })?;
    Ok((uses, section_range(&file, bytes)?))
}

/// `.BTF`'s file range in `bytes`, if the object has one.
fn section_range(
    file: &ElfFile64<'_, LittleEndian>,
    bytes: &[u8],
) -> Result<Option<(usize, usize)>> {
    match file.section_by_name(".BTF").and_then(|s| s.file_range()) {
        Some((o, s)) if o.checked_add(s).is_some_and(|e| e <= bytes.len() as u64) => {
            Ok(Some((o as usize, (o + s) as usize)))
        }
        Some(_) => Err(bad_object(".BTF lies outside the file")),
        None => Ok(None),
    }
}

/// Bytes a BTF type of this kind and vlen has after its 12-byte common header.
pub(super) fn type_extra(kind: u32, vlen: usize) -> usize {
    match kind {
        1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
        3 => 12,                      // ARRAY
        4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
        6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
        _ => 0,
    }
}

pub(super) fn u32_at(d: &[u8], off: usize) -> Result<u32> {
    crate::btf_index::u32_at(d, off).ok_or_else(|| bad_object(".BTF is truncated"))
}

pub(super) fn put_u32(d: &mut [u8], off: usize, v: u32) -> Result<()> {
    d.get_mut(off..off.saturating_add(4))
        .ok_or_else(|| bad_object(".BTF is truncated"))?
        .copy_from_slice(&v.to_le_bytes());
    Ok(())
}

/// A relocation in program code against an undefined symbol (an extern).
pub(super) struct ExternRef<'data, 'file> {
    /// The section's offset in the file and its size.
    pub section: (u64, u64),
    /// Where the referring instruction is, in the section.
    pub offset: u64,
    pub symbol: ElfSymbol64<'data, 'file, LittleEndian>,
}

/// Calls `f` for every reference to an extern in program code (debug sections may name
/// the externs too).
pub(super) fn for_each_undefined_ref<'data>(
    file: &ElfFile64<'data, LittleEndian>,
    f: &mut dyn FnMut(ExternRef<'data, '_>) -> Result<()>,
) -> Result<()> {
    for section in file
        .sections()
        .filter(|s| s.kind() == object::SectionKind::Text)
    {
        let Some((sec_off, sec_size)) = section.file_range() else {
            continue;
        };
        for (offset, rel) in section.relocations() {
            let RelocationTarget::Symbol(idx) = rel.target() else {
                continue;
            };
            match file.symbol_by_index(idx) {
                Ok(symbol) if symbol.is_undefined() => f(ExternRef {
                    section: (sec_off, sec_size),
                    offset,
                    symbol,
                })?,
                _ => {}
            }
        }
    }
    Ok(())
}

/// `.BTF`'s file range in `bytes`, if the object has one.
pub fn btf_range(bytes: &[u8]) -> Result<Option<(usize, usize)>> {
    let file = ElfFile64::<LittleEndian>::parse(bytes)
        .map_err(|e| bad_object(format!("not a 64-bit little-endian ELF object: {e}")))?;
    section_range(&file, bytes)
}

/// Makes extern FUNCs static and extern VARs typedefs, and turns the `.ksyms` and
/// `.kconfig` DATASECs into an unnamed `void *` nothing refers to (the kernel refuses
/// extern linkage, nodebpf lays out `.kconfig` in a map of its own, kernels before 5.12
/// refuse an empty DATASEC, and aya-obj would size a DATASEC by its ELF section, which
/// externs do not have). A DATASEC's entries are cut out and the bytes after them moved
/// up; the string section grows by as many NUL bytes, so `.BTF` keeps its size in the
/// file.
pub fn drop_extern_btf(btf: &mut [u8]) -> Result<()> {
    let hdr_len = u32_at(btf, 4)? as usize;
    let type_off = u32_at(btf, 8)? as usize;
    let type_len = u32_at(btf, 12)? as usize;
    let str_off = u32_at(btf, 16)? as usize;
    let str_len = u32_at(btf, 20)? as usize;
    if Some(str_off) != type_off.checked_add(type_len)
        || hdr_len
            .checked_add(str_off)
            .and_then(|e| e.checked_add(str_len))
            .is_none_or(|e| e > btf.len())
    {
        return Err(bad_object(
            ".BTF does not have its strings right after its types",
        ));
    }
    let types = hdr_len + type_off;
    let strings = hdr_len + str_off;
    let is_extern_sec = |btf: &[u8], name_off: u32| {
        btf.get(strings + name_off as usize..strings + str_len)
            .is_some_and(|s| s.starts_with(b".ksyms\0") || s.starts_with(b".kconfig\0"))
    };
    let mut off = types;
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    while off < types + type_len {
        let info = u32_at(btf, off + 4)?;
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        let extra = type_extra(kind, vlen);
        if off + 12 + extra > types + type_len {
            return Err(bad_object(".BTF type section is truncated"));
        }
        if kind == KIND_FUNC && vlen as u32 == LINKAGE_EXTERN {
            put_u32(btf, off + 4, info & !0xffff)?;
        }
        if kind == KIND_VAR && u32_at(btf, off + 12)? == LINKAGE_EXTERN {
            // A TYPEDEF of the VAR's type: nothing refers to it once the DATASEC is empty,
            // and a typeless one's `const void` is a type the kernel refuses for a VAR.
            put_u32(btf, off + 4, KIND_TYPEDEF << 24)?;
            cuts.push((off + 12, 4));
        }
        if kind == KIND_DATASEC && vlen > 0 && is_extern_sec(btf, u32_at(btf, off)?) {
            put_u32(btf, off, 0)?;
            put_u32(btf, off + 4, KIND_PTR << 24)?;
            put_u32(btf, off + 8, 0)?; // to void
            cuts.push((off + 12, extra));
        }
        off += 12 + extra;
    }
    // Last first, so the earlier cuts' offsets stay right.
    let (mut type_len, mut str_off, mut str_len) = (type_len, str_off, str_len);
    for (at, len) in cuts.into_iter().rev() {
        let end = hdr_len + str_off + str_len;
        btf.copy_within(at + len..end, at);
        btf[end - len..end].fill(0);
        type_len -= len;
        str_off -= len;
        str_len += len;
    }
    put_u32(btf, 12, type_len as u32)?;
    put_u32(btf, 16, str_off as u32)?;
    put_u32(btf, 20, str_len as u32)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// [1] FUNC_PROTO void(void), [2] FUNC "kf" extern, [3] DATASEC ".ksyms" { [2] }.
    fn btf_with_kfunc() -> Vec<u8> {
        let strings = b"\0kf\0.ksyms\0".to_vec();
        let types = [
            words(&[0, 13 << 24, 0]),
            words(&[1, (12 << 24) | LINKAGE_EXTERN, 1]),
            words(&[4, (15 << 24) | 1, 0, 2, 0, 0]),
        ]
        .concat();
        let mut btf = vec![0x9f, 0xeb, 1, 0];
        btf.extend(words(&[
            24,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ]));
        btf.extend(types);
        btf.extend(strings);
        btf
    }

    #[test]
    fn extern_btf_becomes_what_the_kernel_takes() {
        let mut btf = btf_with_kfunc();
        let len = btf.len();
        drop_extern_btf(&mut btf).expect("fixed");
        assert_eq!(btf.len(), len);
        let u = |o: usize| u32_at(&btf, o).expect("in range");
        // 12 bytes of DATASEC entry moved from the types to the strings' tail.
        assert_eq!((u(12), u(16), u(20)), (36, 36, 23));
        assert_eq!(u(24 + 12 + 4), 12 << 24, "FUNC linkage is static");
        assert_eq!(
            (u(24 + 24), u(24 + 24 + 4), u(24 + 24 + 8)),
            (0, KIND_PTR << 24, 0),
            "the DATASEC is an unnamed void *"
        );
        assert_eq!(&btf[24 + 36..24 + 36 + 11], b"\0kf\0.ksyms\0");
    }

    #[test]
    fn truncated_btf_is_an_error_not_a_panic() {
        let mut btf = btf_with_kfunc();
        // Claim one more DATASEC entry than the section holds.
        let info = u32_at(&btf, 24 + 24 + 4).expect("in range");
        put_u32(&mut btf, 24 + 24 + 4, info + 1).expect("in range");
        assert!(drop_extern_btf(&mut btf).is_err());
    }
}
