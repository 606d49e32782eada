//! Small documents (the catalog, users, ...) written crash-safely: write a new file, fsync it,
//! rename it over the old one, fsync the folder. Each file carries a magic, its length and a
//! CRC-32C, so a damaged file is reported instead of being half-read. Every file operation goes
//! through a [`Disk`].

use std::fs;
use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};

use crate::batch::le_u32;
use crate::disk::Disk;
use crate::error::{Result, StoreError};

const MAGIC: &[u8; 8] = b"WHARFDF1";
const HEADER_LEN: usize = 16;

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Replaces `path` with `contents` atomically and durably, on the real file system
/// (`Disk::real().write_durable`).
pub fn write_durable(path: &Path, contents: &[u8]) -> Result<()> {
    write_durable_with(&Disk::real(), path, contents)
}

/// [`write_durable`] through `disk`: create `<path>.tmp`, write, fdatasync, rename over `path`,
/// sync the folder.
pub(crate) fn write_durable_with(disk: &Disk, path: &Path, contents: &[u8]) -> Result<()> {
    let len = u32::try_from(contents.len()).map_err(|_| {
        StoreError::io(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "document over 4 GiB"),
        )
    })?;
    let tmp = temp_path(path);
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&len.to_le_bytes());
    header[12..16].copy_from_slice(&crc32c::crc32c(contents).to_le_bytes());
    let f = disk.create(&tmp)?;
    let written = disk
        .write_all_vectored(
            &f,
            &tmp,
            &mut [IoSlice::new(&header), IoSlice::new(contents)],
        )
        .and_then(|()| disk.sync_data(&f, &tmp));
    drop(f);
    if let Err(e) = written.and_then(|()| disk.rename(&tmp, path)) {
        // The old document is untouched; the half-made new one is of no use to anybody.
        let _ = disk.remove_file(&tmp);
        return Err(e);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    disk.sync_dir(dir)
}

/// Reads a document written by [`write_durable`]; `None` when there is none.
pub fn read_durable(path: &Path) -> Result<Option<Vec<u8>>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    decode_durable(&bytes)
        .map(|body| Some(body.to_vec()))
        .map_err(|reason| StoreError::CorruptMetadata {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        })
}

/// The contents of a document file's bytes (as [`write_durable`] wrote them, wherever they
/// were found: a copy in the remote store is checked like the file), or why they are not one.
pub(crate) fn decode_durable(bytes: &[u8]) -> std::result::Result<&[u8], &'static str> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err("missing header");
    }
    let len = le_u32(bytes, 8) as usize;
    if bytes.len() - HEADER_LEN != len {
        return Err("length does not match the header");
    }
    let body = &bytes[HEADER_LEN..];
    if crc32c::crc32c(body) != le_u32(bytes, 12) {
        return Err("checksum mismatch");
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc");
        assert_eq!(read_durable(&path).unwrap(), None);
        write_durable(&path, b"first").unwrap();
        write_durable(&path, b"second version").unwrap();
        assert_eq!(read_durable(&path).unwrap().unwrap(), b"second version");
        assert!(!temp_path(&path).exists());

        let good = fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            fs::write(&path, &bad).unwrap();
            assert!(
                matches!(read_durable(&path), Err(StoreError::CorruptMetadata { .. })),
                "flip at byte {i} went unnoticed"
            );
        }
        fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(read_durable(&path).is_err());
    }
}
