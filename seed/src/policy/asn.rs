//! The operator's IP-to-ASN table, used to spread discovery answers over networks.
//!
//! Format: one `CIDR<TAB>ASN` per line (IPv4; for example `192.0.2.0/24\t64500`), blank lines
//! and `#` comments ignored. Lookups take the most specific matching prefix.

use std::net::Ipv4Addr;

/// Errors from parsing the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AsnTableError {
    /// A line is not `CIDR<TAB>ASN`.
    #[error("line {0}: expected CIDR<TAB>ASN")]
    BadLine(usize),
}

/// Prefix → ASN entries, longest prefix wins.
#[derive(Debug, Clone, Default)]
pub struct AsnTable {
    entries: Vec<(u32, u8, u32)>,
}

impl AsnTable {
    /// Parses the TSV text.
    ///
    /// # Errors
    /// [`AsnTableError::BadLine`] naming the first bad line.
    pub fn parse(text: &str) -> Result<Self, AsnTableError> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || AsnTableError::BadLine(i + 1);
            let (cidr, asn) = line.split_once('\t').ok_or_else(bad)?;
            let (net, len) = cidr.trim().split_once('/').ok_or_else(bad)?;
            let net: Ipv4Addr = net.parse().map_err(|_| bad())?;
            let len: u8 = len.parse().ok().filter(|l| *l <= 32).ok_or_else(bad)?;
            let asn: u32 = asn
                .trim()
                .trim_start_matches("AS")
                .parse()
                .map_err(|_| bad())?;
            entries.push((u32::from(net) & mask(len), len, asn));
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.1));
        Ok(Self { entries })
    }

    /// The ASN of `host` if it is a dotted IPv4 address covered by the table.
    pub fn lookup(&self, host: &str) -> Option<u32> {
        let ip = u32::from(host.parse::<Ipv4Addr>().ok()?);
        self.entries
            .iter()
            .find(|(net, len, _)| ip & mask(*len) == *net)
            .map(|(_, _, asn)| *asn)
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn mask(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_bad_lines_are_named() {
        let t = AsnTable::parse("# test\n10.0.0.0/8\t100\n10.1.0.0/16\tAS200\n\n0.0.0.0/0\t1\n")
            .unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup("10.1.2.3"), Some(200));
        assert_eq!(t.lookup("10.2.2.3"), Some(100));
        assert_eq!(t.lookup("192.0.2.1"), Some(1));
        assert_eq!(t.lookup("example.org"), None);
        assert_eq!(
            AsnTable::parse("10.0.0.0/33\t1").unwrap_err(),
            AsnTableError::BadLine(1)
        );
        assert_eq!(
            AsnTable::parse("x\n1.2.3.4 5").unwrap_err(),
            AsnTableError::BadLine(1)
        );
    }
}
