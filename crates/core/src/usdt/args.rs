//! USDT argument specs (`-4@%eax`, `8@-8(%rbp)`, `4@$5`; arm64: `8@x0`, `-4@[sp, 12]`) into
//! the `struct __bpf_usdt_spec` that libbpf's `<bpf/usdt.bpf.h>` reads in the program.
//! Each architecture is one parser plus one table of register names to their offsets in
//! that architecture's `struct pt_regs`.

use crate::error::{einval, unsupported, Result};

/// `BPF_USDT_MAX_ARG_CNT` of usdt.bpf.h.
pub const MAX_ARGS: usize = 12;
/// `sizeof(struct __bpf_usdt_arg_spec)`: val_off u64, arg_type u32, reg_off i16,
/// arg_signed u8, arg_bitshift i8.
const ARG_SPEC_SIZE: usize = 16;
/// `sizeof(struct __bpf_usdt_spec)`: the args, usdt_cookie u64, arg_cnt i16, padding.
pub const SPEC_SIZE: usize = 208;
const COOKIE_OFFSET: usize = MAX_ARGS * ARG_SPEC_SIZE;
const ARG_CNT_OFFSET: usize = COOKIE_OFFSET + 8;

/// `enum __bpf_usdt_arg_type`. The installed usdt.bpf.h has no `BPF_USDT_ARG_SIB`, so
/// base+index*scale operands are refused rather than encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArgKind {
    Const = 0,
    Reg = 1,
    RegDeref = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArgSpec {
    pub kind: ArgKind,
    /// The constant, or the offset added to the register for `RegDeref`.
    pub val_off: u64,
    /// `offsetof(struct pt_regs, reg)`; 0 for constants.
    pub reg_off: i16,
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
    let (kind, val_off, reg) = match arch {
        Arch::X86_64 => x86_64_operand(operand, &bad, probe, arg)?,
        Arch::Aarch64 => aarch64_operand(operand, &bad)?,
    };
    let reg_off = match reg {
        Some(r) => arch
            .reg_offset(r)
            .ok_or_else(|| bad(&format!("unknown register '{r}'")))?,
        None => 0,
    };
    Ok(ArgSpec {
        kind,
        val_off,
        reg_off,
        signed: size < 0,
        bitshift: (64 - bytes * 8) as u8,
    })
}

type Operand<'a> = (ArgKind, u64, Option<&'a str>);

/// `%reg`, `OFF(%reg)`, `(%reg)`, `$IMM`; `OFF(%base,%index,SCALE)` is refused.
fn x86_64_operand<'a>(
    op: &'a str,
    bad: &dyn Fn(&str) -> crate::error::Error,
    probe: &str,
    arg: &str,
) -> Result<Operand<'a>> {
    if let Some(imm) = op.strip_prefix('$') {
        let v = parse_int(imm).ok_or_else(|| bad("bad constant"))?;
        return Ok((ArgKind::Const, v, None));
    }
    if let Some(reg) = op.strip_prefix('%') {
        return Ok((ArgKind::Reg, 0, Some(reg)));
    }
    let (off, rest) = op.split_once('(').ok_or_else(|| bad("unknown operand"))?;
    let inner = rest
        .strip_suffix(')')
        .ok_or_else(|| bad("unbalanced parentheses"))?;
    if inner.contains(',') {
        return Err(unsupported(format!(
            "USDT probe {probe}: argument spec '{arg}' is a base+index*scale operand, which the \
             installed <bpf/usdt.bpf.h> cannot read (it has no BPF_USDT_ARG_SIB)"
        )));
    }
    let reg = inner
        .strip_prefix('%')
        .ok_or_else(|| bad("expected a register"))?;
    let off = if off.is_empty() {
        0
    } else {
        parse_int(off).ok_or_else(|| {
            bad("the offset is not a number (symbol-relative operands are not supported)")
        })?
    };
    Ok((ArgKind::RegDeref, off, Some(reg)))
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
        return Ok((ArgKind::RegDeref, off, Some(reg)));
    }
    if let Some(v) = parse_int(op) {
        return Ok((ArgKind::Const, v, None));
    }
    Ok((ArgKind::Reg, 0, Some(op)))
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

/// The map value `struct __bpf_usdt_spec` (little-endian hosts: x86-64, arm64).
pub fn encode_spec(args: &[ArgSpec], cookie: u64) -> [u8; SPEC_SIZE] {
    let mut out = [0u8; SPEC_SIZE];
    for (a, slot) in args.iter().zip(out.chunks_exact_mut(ARG_SPEC_SIZE)) {
        slot[0..8].copy_from_slice(&a.val_off.to_ne_bytes());
        slot[8..12].copy_from_slice(&(a.kind as u32).to_ne_bytes());
        slot[12..14].copy_from_slice(&a.reg_off.to_ne_bytes());
        slot[14] = u8::from(a.signed);
        slot[15] = a.bitshift;
    }
    out[COOKIE_OFFSET..COOKIE_OFFSET + 8].copy_from_slice(&cookie.to_ne_bytes());
    // At most MAX_ARGS (12) arguments: parse_args refuses more.
    let count = args.len().min(MAX_ARGS) as i16;
    out[ARG_CNT_OFFSET..ARG_CNT_OFFSET + 2].copy_from_slice(&count.to_ne_bytes());
    out
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
    fn refusals_name_the_probe_and_spec() {
        let e = parse_args(Arch::X86_64, "prov:name", "8@(%rax,%rdx,8)").unwrap_err();
        assert_eq!(e.code, crate::Code::Unsupported);
        assert!(
            e.message.contains("prov:name") && e.message.contains("8@(%rax,%rdx,8)"),
            "{}",
            e.message
        );
        for bad in ["3@%rax", "8@%xmm0", "8@sym(%rip)", "rax", "8@"] {
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
    fn spec_layout() {
        let args = parse_args(Arch::X86_64, "p:n", "-4@%eax 8@-8(%rbp)").expect("args");
        let b = encode_spec(&args, 0xabcd);
        assert_eq!(&b[8..12], &1u32.to_ne_bytes());
        assert_eq!(&b[12..14], &80i16.to_ne_bytes());
        assert_eq!((b[14], b[15]), (1, 32));
        assert_eq!(&b[16..24], &(-8i64).to_ne_bytes());
        assert_eq!(&b[24..28], &2u32.to_ne_bytes());
        assert_eq!(&b[192..200], &0xabcdu64.to_ne_bytes());
        assert_eq!(&b[200..202], &2i16.to_ne_bytes());
    }
}
