//! Magic number -> CPython release, from the generated history table.

use crate::generated::magic::{MAGIC_HISTORY, RELEASE_MAGIC};

/// What the history says about one magic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MagicInfo {
    pub magic: u16,
    pub major: u8,
    pub minor: u8,
    /// e.g. "Python 3.11b4" or "Python 3000"
    pub label: &'static str,
    /// why the number changed, as the history says
    pub note: &'static str,
}

impl MagicInfo {
    pub fn release(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

fn parse_release(s: &str) -> (u8, u8) {
    let mut it = s.split('.');
    let major = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let minor = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    (major, minor)
}

/// The release that wrote `magic`, if the history knows the number.
pub fn lookup(magic: u16) -> Option<MagicInfo> {
    MAGIC_HISTORY
        .binary_search_by_key(&magic, |e| e.0)
        .ok()
        .map(|i| {
            let (m, release, label, note) = MAGIC_HISTORY[i];
            let (major, minor) = parse_release(release);
            MagicInfo {
                magic: m,
                major,
                minor,
                label,
                note,
            }
        })
}

/// Every known magic number, oldest first.
pub fn all() -> impl Iterator<Item = MagicInfo> {
    MAGIC_HISTORY.iter().filter_map(|e| lookup(e.0))
}

/// The final magic number of release 3.`minor` among the installed
/// interpreters the table was generated from.
pub fn release_magic(minor: u8) -> Option<u16> {
    RELEASE_MAGIC
        .iter()
        .find(|(r, _)| parse_release(r) == (3, minor))
        .map(|(_, m)| *m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_releases() {
        let cases = [
            (3131, 3, 0),
            (3151, 3, 1),
            (3180, 3, 2),
            (3230, 3, 3),
            (3310, 3, 4),
            (3351, 3, 5),
            (3379, 3, 6),
            (3394, 3, 7),
            (3413, 3, 8),
            (3425, 3, 9),
            (3439, 3, 10),
            (3495, 3, 11),
            (3531, 3, 12),
            (3571, 3, 13),
            (3627, 3, 14),
            (62211, 2, 7),
        ];
        for (magic, major, minor) in cases {
            let info = lookup(magic).unwrap_or_else(|| panic!("{magic} unknown"));
            assert_eq!((info.major, info.minor), (major, minor), "{magic}");
        }
        assert!(lookup(3999).is_none());
        assert!(lookup(1234).is_none());
        assert_eq!(release_magic(11), Some(3495));
    }

    #[test]
    fn table_is_sorted_and_unique() {
        assert!(MAGIC_HISTORY.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
