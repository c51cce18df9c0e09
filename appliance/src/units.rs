//! Human-friendly sizes ("64MiB", "4G", 1048576) and durations ("30s", "1m 30s")
//! as they appear in the config file and on the command line.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A number of bytes.
///
/// Parsing follows GNU coreutils: `K`, `M`, `G`, `T`, `P` and `KiB` … `PiB`
/// are powers of 1024; `KB`, `MB`, `GB`, `TB`, `PB` are powers of 1000; a
/// plain number (optionally with `B`) is bytes. Units are case-insensitive
/// and may be separated from the number by spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

const KIB: u64 = 1 << 10;

impl ByteSize {
    pub const fn mib(n: u64) -> Self {
        ByteSize(n << 20)
    }
    pub const fn gib(n: u64) -> Self {
        ByteSize(n << 30)
    }
}

/// Parse a size; the error says what was wrong and what is accepted.
pub fn parse_size(text: &str) -> Result<ByteSize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit = unit.trim();
    let hint = "expected a size such as 4096, 64MiB, 4G or 1TiB";
    if digits.is_empty() {
        return Err(format!("invalid size `{text}`: {hint}"));
    }
    if unit.starts_with('.') {
        return Err(format!(
            "invalid size `{text}`: fractions are not accepted, use a smaller unit"
        ));
    }
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size `{text}`: number too large"))?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => KIB.pow(2),
        "g" | "gib" => KIB.pow(3),
        "t" | "tib" => KIB.pow(4),
        "p" | "pib" => KIB.pow(5),
        "kb" => 1000,
        "mb" => 1000u64.pow(2),
        "gb" => 1000u64.pow(3),
        "tb" => 1000u64.pow(4),
        "pb" => 1000u64.pow(5),
        _ => return Err(format!("invalid size `{text}`: unknown unit `{unit}`; {hint}")),
    };
    number
        .checked_mul(multiplier)
        .map(ByteSize)
        .ok_or_else(|| format!("invalid size `{text}`: too large"))
}

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_size(s)
    }
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that divides the size exactly ("2GiB", "1536KiB", "4097").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["PiB", "TiB", "GiB", "MiB", "KiB"];
        if self.0 > 0 {
            for (i, unit) in UNITS.iter().enumerate() {
                let scale = KIB.pow(5 - i as u32);
                if self.0 % scale == 0 {
                    return write!(f, "{}{unit}", self.0 / scale);
                }
            }
        }
        write!(f, "{}", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a size such as \"64MiB\", \"4G\" or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("invalid size {v}: must not be negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                parse_size(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration written for people: "30s", "5m", "1h 30m", "250ms".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

pub fn parse_duration(text: &str) -> Result<HumanDuration, String> {
    humantime::parse_duration(text.trim())
        .map(HumanDuration)
        .map_err(|e| format!("invalid duration `{text}`: {e}; expected e.g. \"30s\", \"5m\" or \"1h 30m\""))
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return write!(f, "0s");
        }
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a duration such as \"30s\" or \"5m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                parse_duration(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        let cases = [
            ("0", 0),
            ("4096", 4096),
            ("512B", 512),
            ("64MiB", 64 << 20),
            ("64mib", 64 << 20),
            ("64 MiB", 64 << 20),
            ("4G", 4 << 30),
            ("4g", 4 << 30),
            ("1TiB", 1 << 40),
            ("2K", 2048),
            ("2KB", 2000),
            ("3GB", 3_000_000_000),
            (" 1P ", 1 << 50),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(ByteSize(want)), "{text}");
        }
    }

    #[test]
    fn bad_sizes_are_explained() {
        for text in [
            "",
            "G",
            "-1",
            "1.5G",
            "12 parsecs",
            "99999999999999999999",
            "16384P",
        ] {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains("invalid size"), "{text}: {err}");
        }
        assert!(parse_size("1.5G").unwrap_err().contains("fractions"));
        assert!(parse_size("3 XB").unwrap_err().contains("unknown unit `XB`"));
    }

    #[test]
    fn sizes_display_exactly_and_round_trip() {
        for (n, text) in [
            (0, "0"),
            (4097, "4097"),
            (4096, "4KiB"),
            (1536 << 10, "1536KiB"),
            (2 << 30, "2GiB"),
            (1 << 40, "1TiB"),
        ] {
            assert_eq!(ByteSize(n).to_string(), text);
            assert_eq!(parse_size(text), Ok(ByteSize(n)));
        }
    }

    #[test]
    fn sizes_deserialize_from_numbers_and_strings() {
        #[derive(Deserialize)]
        struct T {
            a: ByteSize,
            b: ByteSize,
        }
        let t: T = toml::from_str("a = 1024\nb = \"8MiB\"").unwrap();
        assert_eq!((t.a, t.b), (ByteSize(1024), ByteSize::mib(8)));
        assert!(toml::from_str::<T>("a = -1\nb = 0").is_err());
        assert!(toml::from_str::<T>("a = true\nb = 0").is_err());
    }

    #[test]
    fn durations_parse_and_round_trip() {
        assert_eq!(parse_duration("30s"), Ok(HumanDuration(Duration::from_secs(30))));
        assert_eq!(
            parse_duration("1h 30m"),
            Ok(HumanDuration(Duration::from_secs(5400)))
        );
        assert_eq!(
            parse_duration("250ms"),
            Ok(HumanDuration(Duration::from_millis(250)))
        );
        for d in [0, 3, 90, 3600] {
            let h = HumanDuration(Duration::from_secs(d));
            assert_eq!(parse_duration(&h.to_string()), Ok(h));
        }
        assert!(parse_duration("30").unwrap_err().contains("invalid duration"));
        assert!(parse_duration("soon").unwrap_err().contains("invalid duration"));
    }
}
