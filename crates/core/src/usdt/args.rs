//! USDT argument specs (`-4@%eax`, `8@-8(%rbp)`, `4@$5`; arm64: `8@x0`, `-4@[sp, 12]`) into
//! the `struct __bpf_usdt_spec` that libbpf's `<bpf/usdt.bpf.h>` reads in the program.
//! Each architecture is one parser plus one table of register names to their offsets in
//! that architecture's `struct pt_regs`.

use crate::error::{einval, Result};

/// `BPF_USDT_MAX_ARG_CNT` of usdt.bpf.h.
pub const MAX_ARGS: usize = 12;

/// `struct __bpf_usdt_spec` as one version of libbpf's usdt.bpf.h lays it out: `args`,
/// then `usdt_cookie` (u64) and `arg_cnt` (i16). Each `struct __bpf_usdt_arg_spec` starts
/// with `val_off` (u64) and `arg_type`. The program's object declares the spec map with
/// the header it was built with, so the map's value size tells which layout it reads.
#[derive(Debug, PartialEq, Eq)]
pub struct SpecLayout {
    /// `sizeof(struct __bpf_usdt_spec)`: the spec map's value size.
    pub size: usize,
    /// `sizeof(struct __bpf_usdt_arg_spec)`.
    arg_size: usize,
    /// Offsets in an arg spec of `reg_off` (i16), `arg_signed` (bool), `arg_bitshift`.
    reg_off_at: usize,
    signed_at: usize,
    bitshift_at: usize,
    /// `arg_type` is an 8-bit field followed by `idx_reg_off:12` and `scale_bitshift:4`
    /// (the 16 bits at offset 10): base+index*scale operands (`BPF_USDT_ARG_SIB`) can be
    /// read. Before, `arg_type` is a whole u32 enum.
    sib: bool,
}

/// usdt.bpf.h up to libbpf 1.6.
pub const LAYOUT_CLASSIC: SpecLayout = SpecLayout {
    size: 208,
    arg_size: 16,
    reg_off_at: 12,
    signed_at: 14,
    bitshift_at: 15,
    sib: false,
};

/// usdt.bpf.h from libbpf 1.7 (`arg_type:8`, `idx_reg_off:12`, `scale_bitshift:4`,
/// `__reserved:8`, then `reg_off` aligned to 2).
pub const LAYOUT_SIB: SpecLayout = SpecLayout {
    size: 304,
    arg_size: 24,
    reg_off_at: 14,
    signed_at: 16,
    bitshift_at: 17,
    sib: true,
};

impl SpecLayout {
    /// The layout whose spec is `value_size` bytes.
    pub fn of_value_size(value_size: u32) -> Option<&'static SpecLayout> {
        [&LAYOUT_CLASSIC, &LAYOUT_SIB]
            .into_iter()
            .find(|l| l.size == value_size as usize)
    }

    /// Whether this layout can carry every argument.
    pub fn can_read(&self, args: &[ArgSpec]) -> bool {
        self.sib || args.iter().all(|a| a.kind != ArgKind::Sib)
    }

    /// The map value `struct __bpf_usdt_spec` (little-endian hosts: x86-64, arm64). An
    /// argument the layout cannot carry (see `can_read`) is written as its base register
    /// only: check first.
    pub fn encode(&self, args: &[ArgSpec], cookie: u64) -> Vec<u8> {
        let mut out = vec![0u8; self.size];
        for (a, slot) in args.iter().zip(out.chunks_exact_mut(self.arg_size)) {
            slot[0..8].copy_from_slice(&a.val_off.to_ne_bytes());
            let mut arg_type = a.kind as u32;
            if self.sib {
                // Offset 10: idx_reg_off (12 bits), scale_bitshift (4 bits).
                let index =
                    u32::from(a.idx_reg_off & 0xfff) | (u32::from(a.scale_shift & 0xf) << 12);
                arg_type |= index << 16;
            }
            slot[8..12].copy_from_slice(&arg_type.to_ne_bytes());
            slot[self.reg_off_at..self.reg_off_at + 2].copy_from_slice(&a.reg_off.to_ne_bytes());
            slot[self.signed_at] = u8::from(a.signed);
            slot[self.bitshift_at] = a.bitshift;
        }
        let cookie_at = MAX_ARGS * self.arg_size;
        out[cookie_at..cookie_at + 8].copy_from_slice(&cookie.to_ne_bytes());
        // At most MAX_ARGS (12) arguments: parse_args refuses more.
        let count = args.len().min(MAX_ARGS) as i16;
        out[cookie_at + 8..cookie_at + 10].copy_from_slice(&count.to_ne_bytes());
        out
    }
}

/// `enum __bpf_usdt_arg_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArgKind {
    Const = 0,
    Reg = 1,
    RegDeref = 2,
    /// Memory at base + index << scale + offset (x86-64 `OFF(%base,%index,SCALE)`).
    Sib = 3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArgSpec {
    pub kind: ArgKind,
    /// The constant, or the offset added to the register for `RegDeref` and `Sib`.
    pub val_off: u64,
    /// `offsetof(struct pt_regs, reg)` (the base register for `Sib`); 0 for constants.
    pub reg_off: i16,
    /// `Sib`: `offsetof(struct pt_regs, index)`, and log2 of the scale.
    pub idx_reg_off: u16,
    pub scale_shift: u8,
    pub signed: bool,
    /// 64 minus the argument's size in bits: how far usdt.bpf.h shifts to truncate/extend.
    pub bitshift: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture this library runs on: specs are read against its `pt_regs`.
    pub fn host() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    fn reg_offset(self, name: &str) -> Option<i16> {
        match self {
            Arch::X86_64 => X86_64_REGS
                .iter()
                .find(|(_, names)| names.contains(&name))
                .map(|(off, _)| *off),
            Arch::Aarch64 => aarch64_reg(name),
        }
    }
}

/// x86-64 `struct pt_regs` (arch/x86/include/asm/ptrace.h): each register with the names
/// of its 64/32/16/8-bit parts. A narrower part is read as the whole register and cut to
/// the argument's size by `bitshift` (little-endian: the low bytes come first).
const X86_64_REGS: &[(i16, &[&str])] = &[
    (0, &["r15", "r15d", "r15w", "r15b"]),
    (8, &["r14", "r14d", "r14w", "r14b"]),
    (16, &["r13", "r13d", "r13w", "r13b"]),
    (24, &["r12", "r12d", "r12w", "r12b"]),
    (32, &["rbp", "ebp", "bp", "bpl"]),
    (40, &["rbx", "ebx", "bx", "bl"]),
    (48, &["r11", "r11d", "r11w", "r11b"]),
    (56, &["r10", "r10d", "r10w", "r10b"]),
    (64, &["r9", "r9d", "r9w", "r9b"]),
    (72, &["r8", "r8d", "r8w", "r8b"]),
    (80, &["rax", "eax", "ax", "al"]),
    (88, &["rcx", "ecx", "cx", "cl"]),
    (96, &["rdx", "edx", "dx", "dl"]),
    (104, &["rsi", "esi", "si", "sil"]),
    (112, &["rdi", "edi", "di", "dil"]),
    (128, &["rip", "eip", "ip"]),
    (152, &["rsp", "esp", "sp", "spl"]),
];

/// arm64 `struct user_pt_regs`: x0..x30 (`w` names their low halves), then sp and pc.
const AARCH64_SP: i16 = 31 * 8;
const AARCH64_PC: i16 = 32 * 8;

fn aarch64_reg(name: &str) -> Option<i16> {
    match name {
        "sp" => Some(AARCH64_SP),
        "pc" => Some(AARCH64_PC),
        _ => {
            let n: i16 = name
                .strip_prefix('x')
                .or_else(|| name.strip_prefix('w'))?
                .parse()
                .ok()?;
            (0..=30).contains(&n).then_some(n * 8)
        }
    }
}

/// All arguments of one probe, from the note's space-separated spec string.
pub fn parse_args(arch: Arch, probe: &str, specs: &str) -> Result<Vec<ArgSpec>> {
    let args = split_args(specs);
    if args.len() > MAX_ARGS {
        return Err(einval(format!(
            "USDT probe {probe}: {} arguments ('{specs}'); usdt.bpf.h reads at most {MAX_ARGS}",
            args.len()
        )));
    }
    args.iter().map(|a| parse_arg(arch, probe, a)).collect()
}

/// Splits on spaces outside brackets (arm64's `[sp, 8]` has one inside).
fn split_args(specs: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, None);
    for (i, c) in specs.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ' ' | '\t' if depth <= 0 => {
                if let Some(s) = start.take() {
                    out.push(&specs[s..i]);
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(i);
    }
    if let Some(s) = start {
        out.push(&specs[s..]);
    }
    out
}

fn parse_arg(arch: Arch, probe: &str, arg: &str) -> Result<ArgSpec> {
    let bad = |why: &str| {
        einval(format!(
            "USDT probe {probe}: cannot read argument spec '{arg}' ({why})"
        ))
    };
    let (size, operand) = arg
        .split_once('@')
        .ok_or_else(|| bad("expected SIZE@OPERAND"))?;
    let size: i32 = size.parse().map_err(|_| bad("bad size"))?;
    let bytes = size.unsigned_abs();
    if ![1, 2, 4, 8].contains(&bytes) {
        return Err(bad("size must be 1, 2, 4 or 8 bytes"));
    }
    let op = match arch {
        Arch::X86_64 => x86_64_operand(operand, &bad)?,
        Arch::Aarch64 => aarch64_operand(operand, &bad)?,
    };
    let reg_offset = |r: &str| {
        arch.reg_offset(r)
            .ok_or_else(|| bad(&format!("unknown register '{r}'")))
    };
    let reg_off = op.reg.map(reg_offset).transpose()?.unwrap_or(0);
    let (idx_reg_off, scale_shift) = match op.index {
        // x86-64's pt_regs offsets fit idx_reg_off's 12 bits.
        Some((r, shift)) => (reg_offset(r)? as u16, shift),
        None => (0, 0),
    };
    Ok(ArgSpec {
        kind: op.kind,
        val_off: op.val_off,
        reg_off,
        idx_reg_off,
        scale_shift,
        signed: size < 0,
        bitshift: (64 - bytes * 8) as u8,
    })
}

/// An operand: its kind, constant or offset, register, and index register with log2 of
/// its scale.
struct Operand<'a> {
    kind: ArgKind,
    val_off: u64,
    reg: Option<&'a str>,
    index: Option<(&'a str, u8)>,
}

impl<'a> Operand<'a> {
    fn new(kind: ArgKind, val_off: u64, reg: Option<&'a str>) -> Self {
        Operand {
            kind,
            val_off,
            reg,
            index: None,
        }
    }
}

/// `%reg`, `OFF(%reg)`, `(%reg)`, `$IMM`, `OFF(%base,%index,SCALE)`, `(%base,%index,SCALE)`.
fn x86_64_operand<'a>(
    op: &'a str,
    bad: &dyn Fn(&str) -> crate::error::Error,
) -> Result<Operand<'a>> {
    if let Some(imm) = op.strip_prefix('$') {
        let v = parse_int(imm).ok_or_else(|| bad("bad constant"))?;
        return Ok(Operand::new(ArgKind::Const, v, None));
    }
    if let Some(reg) = op.strip_prefix('%') {
        return Ok(Operand::new(ArgKind::Reg, 0, Some(reg)));
    }
    let (off, rest) = op.split_once('(').ok_or_else(|| bad("unknown operand"))?;
    let inner = rest
        .strip_suffix(')')
        .ok_or_else(|| bad("unbalanced parentheses"))?;
    let off = if off.is_empty() {
        0
    } else {
        parse_int(off).ok_or_else(|| {
            bad("the offset is not a number (symbol-relative operands are not supported)")
        })?
    };
    let register = |r: &'a str| {
        r.strip_prefix('%')
            .filter(|r| !r.is_empty())
            .ok_or_else(|| bad("expected a register"))
    };
    let mut parts = inner.split(',');
    let base = register(parts.next().unwrap_or_default())?;
    let Some(index) = parts.next() else {
        return Ok(Operand::new(ArgKind::RegDeref, off, Some(base)));
    };
    let scale = parts.next().unwrap_or("1");
    let shift = match scale.trim() {
        "1" => 0,
        "2" => 1,
        "4" => 2,
        "8" => 3,
        _ => return Err(bad("the scale must be 1, 2, 4 or 8")),
    };
    if parts.next().is_some() {
        return Err(bad("unknown operand"));
    }
    Ok(Operand {
        kind: ArgKind::Sib,
        val_off: off,
        reg: Some(base),
        index: Some((register(index)?, shift)),
    })
}

/// `xN`/`wN`/`sp`, `[reg]`, `[reg, OFF]`, `IMM`.
fn aarch64_operand<'a>(
    op: &'a str,
    bad: &dyn Fn(&str) -> crate::error::Error,
) -> Result<Operand<'a>> {
    if let Some(inner) = op.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| bad("unbalanced brackets"))?;
        let (reg, off) = match inner.split_once(',') {
            Some((r, o)) => {
                let o = o.trim();
                let o = o.strip_prefix('#').unwrap_or(o);
                (r.trim(), parse_int(o).ok_or_else(|| bad("bad offset"))?)
            }
            None => (inner.trim(), 0),
        };
        return Ok(Operand::new(ArgKind::RegDeref, off, Some(reg)));
    }
    if let Some(v) = parse_int(op) {
        return Ok(Operand::new(ArgKind::Const, v, None));
    }
    Ok(Operand::new(ArgKind::Reg, 0, Some(op)))
}

/// A decimal or `0x` hex integer, possibly negative, as its two's complement.
fn parse_int(s: &str) -> Option<u64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let v = match digits.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok()?,
        None if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse().ok()?
        }
        None => return None,
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(arch: Arch, s: &str) -> ArgSpec {
        let mut v = parse_args(arch, "p:n", s).expect(s);
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn x86_64_operands() {
        let a = one(Arch::X86_64, "-4@%eax");
        assert_eq!(
            (a.kind, a.reg_off, a.signed, a.bitshift),
            (ArgKind::Reg, 80, true, 32)
        );
        let a = one(Arch::X86_64, "8@-8(%rbp)");
        assert_eq!(
            (a.kind, a.reg_off, a.val_off),
            (ArgKind::RegDeref, 32, (-8i64) as u64)
        );
        let a = one(Arch::X86_64, "1@(%rsp)");
        assert_eq!(
            (a.kind, a.reg_off, a.val_off, a.bitshift),
            (ArgKind::RegDeref, 152, 0, 56)
        );
        let a = one(Arch::X86_64, "-2@$-9");
        assert_eq!(
            (a.kind, a.val_off, a.signed, a.bitshift),
            (ArgKind::Const, (-9i64) as u64, true, 48)
        );
        let a = one(Arch::X86_64, "8@%r12");
        assert_eq!((a.reg_off, a.bitshift), (24, 0));
        let a = one(Arch::X86_64, "1@%sil");
        assert_eq!(a.reg_off, 104);
        let v = parse_args(Arch::X86_64, "p:n", "8@%rdi -4@-1204(%rbp)  4@$5").expect("three");
        assert_eq!(v.len(), 3);
        assert_eq!(parse_args(Arch::X86_64, "p:n", "").expect("none"), vec![]);
    }

    #[test]
    fn x86_64_base_index_scale() {
        let a = one(Arch::X86_64, "-8@-40(%rsp,%rdx,8)");
        assert_eq!(
            (a.kind, a.reg_off, a.idx_reg_off, a.scale_shift, a.val_off),
            (ArgKind::Sib, 152, 96, 3, (-40i64) as u64)
        );
        let a = one(Arch::X86_64, "-4@(%rdx,%rcx,4)");
        assert_eq!(
            (a.kind, a.reg_off, a.idx_reg_off, a.scale_shift, a.val_off),
            (ArgKind::Sib, 96, 88, 2, 0)
        );
        let a = one(Arch::X86_64, "2@0x10(%rax,%rbx)");
        assert_eq!((a.idx_reg_off, a.scale_shift, a.val_off), (40, 0, 16));
    }

    #[test]
    fn refusals_name_the_probe_and_spec() {
        for bad in [
            "3@%rax",
            "8@%xmm0",
            "8@sym(%rip)",
            "rax",
            "8@",
            "8@(%rax,%rdx,3)",
            "8@(,%rax,8)",
            "8@(%rax,%rdx,8,1)",
        ] {
            let e = parse_args(Arch::X86_64, "prov:name", bad).unwrap_err();
            assert!(
                e.message.contains("prov:name") && e.message.contains(bad),
                "{}",
                e.message
            );
        }
        let many = vec!["8@%rax"; 13].join(" ");
        assert!(parse_args(Arch::X86_64, "p:n", &many).is_err());
    }

    #[test]
    fn aarch64_operands() {
        let a = one(Arch::Aarch64, "8@x0");
        assert_eq!((a.kind, a.reg_off), (ArgKind::Reg, 0));
        let a = one(Arch::Aarch64, "-4@w3");
        assert_eq!((a.reg_off, a.signed, a.bitshift), (24, true, 32));
        let a = one(Arch::Aarch64, "-4@[sp, 60]");
        assert_eq!((a.kind, a.reg_off, a.val_off), (ArgKind::RegDeref, 248, 60));
        let a = one(Arch::Aarch64, "8@[x29, -8]");
        assert_eq!((a.reg_off, a.val_off), (29 * 8, (-8i64) as u64));
        let a = one(Arch::Aarch64, "4@[x1]");
        assert_eq!((a.kind, a.val_off), (ArgKind::RegDeref, 0));
        let a = one(Arch::Aarch64, "4@5");
        assert_eq!((a.kind, a.val_off), (ArgKind::Const, 5));
        assert!(parse_args(Arch::Aarch64, "p:n", "8@x31").is_err());
        let v = parse_args(Arch::Aarch64, "p:n", "8@x0 -4@[sp, 12] 2@7").expect("three");
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn classic_layout() {
        let args = parse_args(Arch::X86_64, "p:n", "-4@%eax 8@-8(%rbp)").expect("args");
        let b = LAYOUT_CLASSIC.encode(&args, 0xabcd);
        assert_eq!(b.len(), 208);
        assert_eq!(&b[8..12], &1u32.to_ne_bytes());
        assert_eq!(&b[12..14], &80i16.to_ne_bytes());
        assert_eq!((b[14], b[15]), (1, 32));
        assert_eq!(&b[16..24], &(-8i64).to_ne_bytes());
        assert_eq!(&b[24..28], &2u32.to_ne_bytes());
        assert_eq!(&b[192..200], &0xabcdu64.to_ne_bytes());
        assert_eq!(&b[200..202], &2i16.to_ne_bytes());
    }

    #[test]
    fn libbpf_1_7_layout() {
        let args = parse_args(Arch::X86_64, "p:n", "-4@%eax -8@-40(%rsp,%rdx,8)").expect("args");
        assert!(!LAYOUT_CLASSIC.can_read(&args) && LAYOUT_SIB.can_read(&args));
        let b = LAYOUT_SIB.encode(&args, 0xabcd);
        assert_eq!(b.len(), 304);
        assert_eq!((b[8], &b[9..12]), (1, &[0u8, 0, 0][..]));
        assert_eq!(&b[14..16], &80i16.to_ne_bytes());
        assert_eq!((b[16], b[17]), (1, 32));
        // The second: SIB, base rsp (152), index rdx (96) scaled by 8 (shift 3).
        assert_eq!(&b[24..32], &(-40i64).to_ne_bytes());
        assert_eq!(b[32], 3);
        assert_eq!(&b[34..36], &(96u16 | (3 << 12)).to_ne_bytes());
        assert_eq!(&b[38..40], &152i16.to_ne_bytes());
        assert_eq!(&b[288..296], &0xabcdu64.to_ne_bytes());
        assert_eq!(&b[296..298], &2i16.to_ne_bytes());
        assert_eq!(SpecLayout::of_value_size(304), Some(&LAYOUT_SIB));
        assert_eq!(SpecLayout::of_value_size(208), Some(&LAYOUT_CLASSIC));
        assert_eq!(SpecLayout::of_value_size(200), None);
    }
}
