//! Where the last `n` log lines start (cri-client pkg/logs/tail.go `findTailLineStartIndex`), found by
//! reading the file backwards in blocks.

use std::io::{Read, Seek, SeekFrom};

const BLOCK_SIZE: u64 = 1024;

/// The offset of the last `n` lines of `file` (0 for the whole file when `n` is `None` or the file has
/// no more lines). A last line without its newline is not counted.
pub fn tail_start(file: &mut (impl Read + Seek), n: Option<u64>) -> std::io::Result<u64> {
    let Some(n) = n else {
        return Ok(0);
    };
    let size = file.seek(SeekFrom::End(0))?;
    let mut newlines = 0u64;
    let mut right = size;
    let mut block = Vec::new();
    let mut left = 0;
    // Blocks from the end until more than `n` newlines are seen: the start is after the extra ones.
    while right > 0 && newlines <= n {
        left = right.saturating_sub(BLOCK_SIZE);
        block.resize(usize::try_from(right - left).unwrap_or(0), 0);
        file.seek(SeekFrom::Start(left))?;
        file.read_exact(&mut block)?;
        newlines += block.iter().filter(|&&b| b == b'\n').count() as u64;
        right = left;
    }
    let mut start = left;
    let mut rest = block.as_slice();
    while newlines > n {
        let Some(idx) = rest.iter().position(|&b| b == b'\n') else {
            break;
        };
        rest = &rest[idx + 1..];
        start += idx as u64 + 1;
        newlines -= 1;
    }
    Ok(start)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn tail(text: &str, n: u64) -> &str {
        let start = tail_start(&mut Cursor::new(text.as_bytes()), Some(n)).unwrap();
        &text[usize::try_from(start).unwrap()..]
    }

    #[test]
    fn the_last_lines_are_found() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail("a\nb\nc\n", 3), "a\nb\nc\n");
        assert_eq!(tail("a\nb\nc\n", 10), "a\nb\nc\n");
        assert_eq!(tail("a\nb\nc\n", 0), "");
        assert_eq!(tail("", 2), "");
    }

    #[test]
    fn an_unterminated_last_line_does_not_count() {
        assert_eq!(tail("a\nb\nc", 1), "b\nc");
        assert_eq!(tail("a\nb\nc", 0), "c");
    }

    #[test]
    fn the_whole_file_without_a_count() {
        let text = "a\nb\n";
        assert_eq!(tail_start(&mut Cursor::new(text), None).unwrap(), 0);
    }

    #[test]
    fn lines_across_block_boundaries() {
        let lines: Vec<String> = (0..1000)
            .map(|i| format!("line {i:04} {}\n", "x".repeat(i % 37)))
            .collect();
        let text = lines.concat();
        for n in [0, 1, 2, 27, 28, 29, 500, 999, 1000, 1001] {
            let expected = lines[lines.len().saturating_sub(n)..].concat();
            assert_eq!(tail(&text, n as u64), expected, "n={n}");
        }
        // A single line far longer than a block.
        let long = format!("first\n{}\n", "y".repeat(5000));
        assert_eq!(tail(&long, 1), &long[6..]);
    }
}
