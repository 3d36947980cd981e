//! Sans-IO file readers are handed a buffer that starts at some file offset and ask for
//! bytes at other offsets; this is the one place that maps one onto the other.

/// `len` bytes at file offset `pos`, out of `buf` which holds the file from offset `at`;
/// `None` when `buf` does not cover them.
pub(crate) fn window(at: u64, buf: &[u8], pos: u64, len: usize) -> Option<&[u8]> {
    let start = usize::try_from(pos.checked_sub(at)?).ok()?;
    buf.get(start..start.checked_add(len)?)
}

#[cfg(test)]
mod tests {
    use super::window;

    #[test]
    fn windows_inside_only() {
        let buf = [1u8, 2, 3, 4];
        assert_eq!(window(10, &buf, 11, 2), Some(&[2u8, 3][..]));
        assert_eq!(window(10, &buf, 10, 4), Some(&buf[..]));
        assert_eq!(window(10, &buf, 9, 1), None);
        assert_eq!(window(10, &buf, 12, 3), None);
        assert_eq!(window(0, &buf, u64::MAX, usize::MAX), None);
    }
}
