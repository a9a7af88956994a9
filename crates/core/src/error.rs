//! The one error type of the core. Every failure carries a stable `code` that the
//! TypeScript facade turns into `BpfError.code`, so callers can branch on it.

use std::fmt;
use std::io;

/// The kernel's ENOTSUPP (524, not in libc): e.g. an instruction a uprobe cannot step over.
pub(crate) const ENOTSUPP: i32 = 524;

/// Declares the stable error codes once: the enum, the string each is known by in JS
/// (`BpfError.code`), and `Code::ALL`, which the binding exports so a test can check the
/// TypeScript `BpfErrorCode` union against it.
macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// Stable error codes. The string form is the public contract.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }
        }
    };
}

codes! {
    /// Missing capability (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN).
    Eperm => "EPERM",
    /// A named thing (program, map, global, binary, symbol, tracepoint) does not exist.
    Enoent => "ENOENT",
    /// The kernel or the library refused an argument.
    Einval => "EINVAL",
    /// A number out of the range its parameter allows (or not an integer).
    Range => "RANGE",
    /// The verifier rejected a program; the log is attached.
    Verifier => "VERIFIER",
    /// The ELF object could not be understood.
    BadObject => "BAD_OBJECT",
    /// The running kernel lacks the feature.
    Unsupported => "UNSUPPORTED",
    /// Used after `close()`, or closed while the operation ran.
    Closed => "CLOSED",
    /// Already in use (a ring buffer has one consumer).
    Busy => "BUSY",
    /// A ring-buffer batch (or one of its records) read after it was released: its
    /// memory is the kernel's again.
    Stale => "STALE",
    /// A map to reuse (pinned, or an fd given) does not match the object's definition.
    Incompatible => "INCOMPATIBLE",
    /// A bug in nodebpf (a caught panic): the message says where.
    Internal => "INTERNAL",
    /// Any other OS error.
    Io => "EIO",
}

/// What an error is about, as far as the failing layer knows it; the binding fills in
/// what it knows (the program or map it was called for) where the core left a field empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub program: Option<String>,
    pub map: Option<String>,
    pub symbol: Option<String>,
    pub path: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Error {
    pub code: Code,
    pub errno: Option<i32>,
    pub message: String,
    /// The whole verifier log, for `Code::Verifier`.
    pub verifier_log: Option<String>,
    /// Boxed: errors travel in every `Result`, and most carry no subject.
    pub subject: Box<Subject>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            code,
            errno: None,
            message: message.into(),
            verifier_log: None,
            subject: Box::default(),
        }
    }

    /// Classifies an OS error from `what` (a short description of the attempted
    /// operation). EPERM/EACCES become `Code::Eperm` with the missing capabilities named.
    pub fn os(what: impl fmt::Display, err: io::Error) -> Self {
        let errno = err.raw_os_error();
        let code = match errno {
            Some(libc::EPERM) | Some(libc::EACCES) => Code::Eperm,
            Some(libc::ENOENT) | Some(libc::ESRCH) => Code::Enoent,
            Some(libc::EINVAL) | Some(libc::E2BIG) => Code::Einval,
            Some(libc::EOPNOTSUPP) => Code::Unsupported,
            _ => Code::Io,
        };
        let mut message = match errno {
            // libc has no text for the kernel's own ENOTSUPP.
            Some(ENOTSUPP) => format!("{what}: not supported here (ENOTSUPP, os error 524)"),
            _ => format!("{what}: {err}"),
        };
        if code == Code::Eperm {
            message.push_str(&crate::caps::missing_caps_hint());
        }
        Error {
            code,
            errno,
            message,
            verifier_log: None,
            subject: Box::default(),
        }
    }

    pub fn with_errno(mut self, errno: i32) -> Self {
        self.errno = Some(errno);
        self
    }

    /// Names the program the error is about, unless a deeper layer already did.
    pub fn for_program(mut self, name: &str) -> Self {
        self.subject.program.get_or_insert_with(|| name.to_string());
        self
    }

    /// Names the map the error is about, unless a deeper layer already did.
    pub fn for_map(mut self, name: &str) -> Self {
        self.subject.map.get_or_insert_with(|| name.to_string());
        self
    }

    /// A number out of its parameter's range: names the parameter, the value and the range.
    pub fn range(param: &str, value: impl fmt::Display, allowed: impl fmt::Display) -> Self {
        Error::new(
            Code::Range,
            format!("{param} is {value}, outside the allowed range {allowed}"),
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

pub(crate) fn enoent(message: impl Into<String>) -> Error {
    Error::new(Code::Enoent, message)
}

pub(crate) fn einval(message: impl Into<String>) -> Error {
    Error::new(Code::Einval, message)
}

pub(crate) fn bad_object(message: impl Into<String>) -> Error {
    Error::new(Code::BadObject, message)
}

pub(crate) fn unsupported(message: impl Into<String>) -> Error {
    Error::new(Code::Unsupported, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_get_stable_codes() {
        let code = |errno| Error::os("x", io::Error::from_raw_os_error(errno)).code;
        assert_eq!(code(libc::ENOENT), Code::Enoent);
        assert_eq!(code(libc::EINVAL), Code::Einval);
        assert_eq!(code(libc::EOPNOTSUPP), Code::Unsupported);
        assert_eq!(code(libc::EBUSY), Code::Io);
        let e = Error::os("loading", io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!((e.code, e.errno), (Code::Eperm, Some(libc::EPERM)));
        assert!(e.message.starts_with("loading: "));
    }
}
