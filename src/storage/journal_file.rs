//! The journal file (schema version 5): `<database>-rc-journal`, beside SQLite's `-wal`, holds
//! the journal's records (`sqlite_journal.rs`) since the last fold. A commit appends its record
//! with one `pwrite` (and, for `power`, one `fdatasync`) instead of an SQLite transaction: no
//! locks, no B-tree pages, no WAL frames, and nothing for the checkpoint to copy again. What a
//! `pwrite` returned is in the kernel's page cache, which survives a killed process; `power`
//! adds the `fdatasync` before the commit returns.
//!
//! Layout: a header (8 bytes of magic, the journal id: a random number the database stores in
//! `meta` as `journal_id`, so that a journal file from another database is refused), then records:
//! payload length (u32), CRC-32 of the sequence number and payload (u32), sequence number (u64),
//! payload; little-endian. Sequence numbers follow each other; the database's `meta` row
//! `journal_folded` is the last one the tables hold (written in the fold's transaction), so a
//! crash between a fold's commit and the truncation of the file leaves records the open skips.
//!
//! At the open ([`JournalFile::read`], before anything is written): a record cut short at the end
//! of the file, or the last one with a wrong checksum, is a commit that never returned (a `pwrite`
//! interrupted by the kill, or not yet on disk at a power loss): it is dropped, and so is a header
//! not all written (the file was being created: it holds no record). Damage anywhere
//! else, a gap in the sequence numbers, or another database's id refuses the database: dropping
//! a record would lose what it records.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::StorageError;

/// The first bytes of a journal file.
const MAGIC: &[u8; 8] = b"RcJrnl\x00\x01";
/// Header: the magic and the journal id.
const HEADER: u64 = 16;
/// Per record: length, checksum, sequence number.
pub(super) const RECORD_HEADER: usize = 16;

/// The journal file of the database at `db`.
pub(super) fn path_of(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-rc-journal");
    PathBuf::from(p)
}

/// What [`JournalFile::read`] found: the records not yet folded, in order.
pub(super) struct Found {
    pub records: Vec<(u64, Bytes)>,
    /// The last sequence number in the file or folded.
    pub last_seq: u64,
}

/// The open journal file, appended to by the runtime thread.
#[derive(Debug)]
pub(super) struct JournalFile {
    file: File,
    path: PathBuf,
    /// Where the next record goes.
    end: u64,
    next_seq: u64,
    sync: bool,
    /// Fault injection (`SqliteStore::set_query_only`): appends fail as on a read-only file system.
    pub read_only: bool,
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

impl JournalFile {
    /// Reads and checks the journal file of `db` without changing it: the records after `folded`.
    /// `id` is the database's journal id (`None`: it has none yet, so any journal file is
    /// another database's).
    pub fn read(db: &Path, id: Option<u64>, folded: u64) -> Result<Found, StorageError> {
        let path = path_of(db);
        let p = path.display();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StorageError(format!("cannot read {p}: {e}"))),
        };
        let none = Found { records: Vec::new(), last_seq: folded };
        // A header not (all) written yet: the file was being created when the process ended, or
        // not yet on the disk at a power loss; it holds no record.
        let magic = bytes.len().min(MAGIC.len());
        let cut = bytes.len() < HEADER as usize && (bytes[..magic] == MAGIC[..magic] || bytes.iter().all(|&b| b == 0));
        if cut || (bytes.len() == HEADER as usize && bytes.iter().all(|&b| b == 0)) {
            return Ok(none);
        }
        if bytes.len() < HEADER as usize || &bytes[..8] != MAGIC {
            return Err(StorageError(format!("{p} is not a reliable-channel journal: the database is refused")));
        }
        let file_id = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        if id != Some(file_id) {
            return Err(StorageError(format!("{p} belongs to another database (journal id {file_id:#x}): the database is refused")));
        }
        let bytes = Bytes::from(bytes);
        let mut at = HEADER as usize;
        let mut found = none;
        let mut prev: Option<u64> = None;
        while at < bytes.len() {
            let rest = bytes.len() - at;
            if rest < RECORD_HEADER {
                break; // cut short: never returned
            }
            let h = &bytes[at..at + RECORD_HEADER];
            let len = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes")) as usize;
            let sum = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
            let seq = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
            if rest - RECORD_HEADER < len {
                break; // cut short
            }
            let payload = bytes.slice(at + RECORD_HEADER..at + RECORD_HEADER + len);
            at += RECORD_HEADER + len;
            if checksum(seq, &payload) != sum {
                if at == bytes.len() {
                    break; // the last record, not all of it written
                }
                return Err(StorageError(format!("{p}: journal record at byte {} is damaged: the database is refused", at - RECORD_HEADER - len)));
            }
            if prev.is_some_and(|s| s.checked_add(1) != Some(seq)) {
                return Err(StorageError(format!("{p}: journal record {seq} does not follow {}: the database is refused", prev.unwrap_or(0))));
            }
            prev = Some(seq);
            if seq > folded {
                if found.records.is_empty() && seq != folded + 1 {
                    return Err(StorageError(format!("{p}: journal records {} to {} are missing: the database is refused", folded + 1, seq - 1)));
                }
                found.records.push((seq, payload));
                found.last_seq = seq;
            }
        }
        Ok(found)
    }

    /// Opens the journal file for appending after `last_seq`, emptied (its records are folded):
    /// created with `id` when missing. `sync`: every append waits for the disk (`power`).
    pub fn open(db: &Path, id: u64, last_seq: u64, sync: bool) -> Result<JournalFile, StorageError> {
        let path = path_of(db);
        let err = |what: &str, e: std::io::Error| StorageError(format!("{}: {what}: {e}", path.display()));
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(|e| err("cannot open", e))?;
        let mut j = JournalFile { file, path: path.clone(), end: HEADER, next_seq: last_seq + 1, sync, read_only: false };
        // The same bytes when the file has them; then nothing after them.
        let mut header = [0u8; HEADER as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..].copy_from_slice(&id.to_le_bytes());
        j.file.write_all_at(&header, 0).and_then(|()| j.reset()).map_err(|e| err("cannot write", e))?;
        if sync {
            // The file's directory entry, once: what the records' fdatasync then covers.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir).and_then(|d| d.sync_all()).map_err(|e| err("cannot sync its directory", e))?;
            }
        }
        Ok(j)
    }

    /// Appends the next record: `record` is its payload behind [`RECORD_HEADER`] bytes left for
    /// the header, filled here (one write, no copy). On `Ok` it survives a killed process (a
    /// power loss too when `sync`). On an error the file is cut back to where the record began.
    pub fn append(&mut self, record: &mut [u8]) -> std::io::Result<()> {
        if self.read_only {
            return Err(std::io::Error::new(ErrorKind::PermissionDenied, "attempt to write a readonly database (query_only)"));
        }
        let (header, payload) = record.split_at_mut(RECORD_HEADER);
        let len = u32::try_from(payload.len()).map_err(|_| std::io::Error::new(ErrorKind::InvalidInput, "journal record over 4 GiB"))?;
        let seq = self.next_seq;
        header[0..4].copy_from_slice(&len.to_le_bytes());
        header[4..8].copy_from_slice(&checksum(seq, payload).to_le_bytes());
        header[8..16].copy_from_slice(&seq.to_le_bytes());
        let written = self.file.write_all_at(record, self.end).and_then(|()| if self.sync { self.file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            // Best effort: a part left behind is dropped at the next open anyway (cut short).
            let _ = self.file.set_len(self.end);
            return Err(e);
        }
        self.end += record.len() as u64;
        self.next_seq += 1;
        Ok(())
    }

    /// Empties the file (after a fold committed its records to the tables): the header only.
    pub fn reset(&mut self) -> std::io::Result<()> {
        self.file.set_len(HEADER)?;
        // Before the sync: appends must follow the header whether or not it succeeds (after a
        // gap they would read as damage).
        self.end = HEADER;
        if self.sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// The sequence number the last append got (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The file's size.
    pub fn len(&self) -> u64 {
        self.end
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
