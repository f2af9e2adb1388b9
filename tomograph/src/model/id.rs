//! Trace and span ids.

use std::fmt;
use std::num::NonZeroU64;

use crate::error::IdParseError;

/// A trace id: 64 or 128 bits, never zero.
///
/// A 64-bit id is one whose upper 64 bits are zero; it prints as 16 lower-hex characters,
/// a 128-bit one as 32, which is what Zipkin, B3 and W3C expect.
///
/// ```
/// use tomograph::TraceId;
/// let id: TraceId = "463ac35c9f6413ad".parse().unwrap();
/// assert_eq!(id.to_string(), "463ac35c9f6413ad");
/// assert!(!id.is_128bit());
/// let wide = TraceId::from_u128(0x463ac35c9f6413ad48485a3953bb6124).unwrap();
/// assert_eq!(wide.to_string(), "463ac35c9f6413ad48485a3953bb6124");
/// assert_eq!(wide.low(), 0x48485a3953bb6124);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
// Two 64-bit halves rather than one `u128`: 8-byte alignment keeps the tokens that carry a
// trace id cheap to copy on the hot path (a 16-aligned `u128` inside `Option`s made the
// compiler split copies across misaligned stores). Never both zero.
pub struct TraceId {
    high: u64,
    low: u64,
}

impl TraceId {
    /// A random id, 128 bits wide when `wide` is true, 64 otherwise. No system call.
    pub fn random(wide: bool) -> Self {
        let low = fastrand::u64(1..);
        let high = if wide { fastrand::u64(1..) } else { 0 };
        Self { high, low }
    }

    /// The id `value` (64 bits wide), or `None` for zero.
    pub const fn from_u64(value: u64) -> Option<Self> {
        Self::from_u128(value as u128)
    }

    /// The id `value`, or `None` for zero.
    pub const fn from_u128(value: u128) -> Option<Self> {
        if value == 0 {
            None
        } else {
            Some(Self {
                high: (value >> 64) as u64,
                low: value as u64,
            })
        }
    }

    /// The id from its two halves; `None` when both are zero.
    #[inline]
    pub(crate) const fn from_halves(high: u64, low: u64) -> Option<Self> {
        if high == 0 && low == 0 {
            None
        } else {
            Some(Self { high, low })
        }
    }

    /// The whole id.
    pub const fn get(self) -> u128 {
        ((self.high as u128) << 64) | self.low as u128
    }

    /// The lower 64 bits (Zipkin thrift's `trace_id`).
    pub const fn low(self) -> u64 {
        self.low
    }

    /// The upper 64 bits (Zipkin thrift's `trace_id_high`), zero for a 64-bit id.
    pub const fn high(self) -> u64 {
        self.high
    }

    /// Whether the upper 64 bits are used.
    pub const fn is_128bit(self) -> bool {
        self.high() != 0
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_128bit() {
            write!(f, "{:032x}", self.get())
        } else {
            write!(f, "{:016x}", self.low())
        }
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl std::str::FromStr for TraceId {
    type Err = IdParseError;

    /// Parses 16 or 32 hex characters (either case); all zeros is an error.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 && s.len() != 32 {
            return Err(IdParseError::Length { len: s.len() });
        }
        let value = parse_hex_u128(s)?;
        Self::from_u128(value).ok_or(IdParseError::Zero)
    }
}

/// A span id: 64 random bits, never zero.
///
/// ```
/// use tomograph::SpanId;
/// let id: SpanId = "00f067aa0ba902b7".parse().unwrap();
/// assert_eq!(id.get(), 0x00f067aa0ba902b7);
/// assert_eq!(id.to_string(), "00f067aa0ba902b7");
/// assert!("0000000000000000".parse::<SpanId>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(NonZeroU64);

impl SpanId {
    /// A random id from a thread-local generator (no system call per id).
    pub fn random() -> Self {
        Self(NonZeroU64::new(fastrand::u64(1..)).unwrap_or(NonZeroU64::MIN))
    }

    /// The id `value`, or `None` for zero.
    pub const fn from_u64(value: u64) -> Option<Self> {
        match NonZeroU64::new(value) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// The id as a number.
    pub const fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.get())
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

impl std::str::FromStr for SpanId {
    type Err = IdParseError;

    /// Parses 16 hex characters (either case); all zeros is an error.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 {
            return Err(IdParseError::Length { len: s.len() });
        }
        let value = parse_hex_u128(s)? as u64;
        Self::from_u64(value).ok_or(IdParseError::Zero)
    }
}

fn parse_hex_u128(s: &str) -> Result<u128, IdParseError> {
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(IdParseError::NotHex);
    }
    u128::from_str_radix(s, 16).map_err(|_| IdParseError::NotHex)
}
