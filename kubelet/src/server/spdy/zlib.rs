//! SPDY/3 header block compression: one zlib stream per direction for the whole connection, primed with
//! the SPDY dictionary, each block ended by a sync flush so it decodes on its own (spdystream's Framer).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::HEADER_DICTIONARY;

/// Why a header block could not be (de)compressed.
#[derive(Debug, thiserror::Error)]
pub enum ZlibError {
    #[error("compressing a header block: {0}")]
    Compress(#[from] flate2::CompressError),
    #[error("decompressing a header block: {0}")]
    Decompress(#[from] flate2::DecompressError),
    #[error("the header block decompresses to more than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the header block is truncated")]
    Truncated,
}

/// Compresses the header blocks one end sends.
pub struct HeaderCompressor {
    zlib: Compress,
}

impl Default for HeaderCompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderCompressor {
    /// A compressor primed with the SPDY dictionary.
    pub fn new() -> Self {
        let mut zlib = Compress::new(Compression::default(), true);
        // Only fails on a stream already written to, and this one is new.
        let _ = zlib.set_dictionary(&HEADER_DICTIONARY);
        Self { zlib }
    }

    /// `block` compressed and sync-flushed: the bytes that go into one frame.
    pub fn compress(&mut self, block: &[u8]) -> Result<Vec<u8>, ZlibError> {
        let mut out = Vec::with_capacity(block.len() / 2 + 64);
        let start_in = self.zlib.total_in();
        loop {
            let consumed = usize::try_from(self.zlib.total_in() - start_in).unwrap_or(usize::MAX);
            let input = block.get(consumed..).unwrap_or_default();
            out.reserve(input.len() + 64);
            self.zlib
                .compress_vec(input, &mut out, FlushCompress::Sync)?;
            let consumed = usize::try_from(self.zlib.total_in() - start_in).unwrap_or(usize::MAX);
            // The flush is complete once all input is in and zlib stopped short of the buffer's end.
            if consumed >= block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// Decompresses the header blocks the other end sends.
pub struct HeaderDecompressor {
    zlib: Decompress,
    limit: usize,
}

impl HeaderDecompressor {
    /// A decompressor that refuses blocks larger than `limit` bytes once decompressed.
    pub fn new(limit: usize) -> Self {
        Self {
            zlib: Decompress::new(true),
            limit,
        }
    }

    /// The header block carried by one frame's compressed bytes.
    pub fn decompress(&mut self, compressed: &[u8]) -> Result<Vec<u8>, ZlibError> {
        let mut out = Vec::with_capacity(compressed.len() * 4 + 64);
        let start_in = self.zlib.total_in();
        loop {
            let consumed = usize::try_from(self.zlib.total_in() - start_in).unwrap_or(usize::MAX);
            if consumed >= compressed.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            let input = compressed.get(consumed..).unwrap_or_default();
            if out.len() == out.capacity() {
                if out.len() >= self.limit {
                    return Err(ZlibError::TooLarge { limit: self.limit });
                }
                out.reserve(out.len().max(256));
            }
            let before = (self.zlib.total_in(), out.len());
            match self
                .zlib
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Ok(Status::StreamEnd) => return Ok(out),
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.zlib.set_dictionary(&HEADER_DICTIONARY)?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            if out.len() > self.limit {
                return Err(ZlibError::TooLarge { limit: self.limit });
            }
            // No progress with input left and room to write: the block ends mid-stream.
            if (self.zlib.total_in(), out.len()) == before && out.len() < out.capacity() {
                return Err(ZlibError::Truncated);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_through_one_stream_each_way() {
        let mut compressor = HeaderCompressor::new();
        let mut decompressor = HeaderDecompressor::new(1 << 20);
        let blocks: Vec<Vec<u8>> = vec![
            b"\0\0\0\x01\0\0\0\x0astreamtype\0\0\0\x05error".to_vec(),
            b"\0\0\0\x01\0\0\0\x0astreamtype\0\0\0\x06stdout".to_vec(),
            b"\0\0\0\0".to_vec(),
            (0..5000u32).flat_map(|i| i.to_be_bytes()).collect(),
        ];
        for block in &blocks {
            let compressed = compressor.compress(block).unwrap();
            assert_eq!(&decompressor.decompress(&compressed).unwrap(), block);
        }
    }

    #[test]
    fn the_dictionary_is_announced_in_the_zlib_header() {
        let compressed = HeaderCompressor::new().compress(b"\0\0\0\0").unwrap();
        // FDICT set, then the dictionary's Adler-32 (0xe3c6a7c2, as Go's zlib writes it).
        assert_eq!(compressed[0], 0x78);
        assert_ne!(compressed[1] & 0x20, 0);
        assert_eq!(&compressed[2..6], &[0xe3, 0xc6, 0xa7, 0xc2]);
        // A sync flush ends with an empty stored block.
        assert!(compressed.ends_with(&[0, 0, 0xff, 0xff]));
    }

    #[test]
    fn oversized_blocks_are_refused() {
        let mut compressor = HeaderCompressor::new();
        let compressed = compressor.compress(&vec![b'a'; 10_000]).unwrap();
        assert!(matches!(
            HeaderDecompressor::new(1000).decompress(&compressed),
            Err(ZlibError::TooLarge { .. })
        ));
    }
}
