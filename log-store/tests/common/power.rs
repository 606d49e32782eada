//! A power switch for tests: a [`FileHook`] that keeps a *durable image* of the data
//! directory beside the live one, updated only by the operations that make something durable,
//! and freezes it at a chosen file operation (see `power_loss.rs` for what it assumes of the
//! file system).
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use wharf_log_store::{FileHook, FileOp};

use super::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(u64),
    Dir,
}

#[derive(Debug)]
enum DirOp {
    Link(PathBuf, Node),
    Unlink(PathBuf),
}

/// What survived the power failure: folders and files, relative to the data directory.
#[derive(Debug, Default)]
pub struct Image {
    pub dirs: Vec<PathBuf>,
    pub files: Vec<(PathBuf, Vec<u8>)>,
}

impl Image {
    pub fn materialise(&self, to: &Path) {
        for d in &self.dirs {
            fs::create_dir_all(to.join(d)).unwrap();
        }
        for (f, bytes) in &self.files {
            fs::write(to.join(f), bytes).unwrap();
        }
    }
}

#[derive(Debug)]
struct Model {
    next_id: u64,
    /// Names as the running process sees them.
    live: BTreeMap<PathBuf, Node>,
    /// Names that would survive a power failure now.
    durable: BTreeMap<PathBuf, Node>,
    /// Each file's contents as of its last sync.
    data: HashMap<u64, Vec<u8>>,
    /// Changes to names not yet made durable: (folder, change), in order.
    pending: Vec<(PathBuf, DirOp)>,
    ops: u64,
    crash_before: u64,
    image: Option<Image>,
    rng: Rng,
}

/// The durable image and the power switch.
#[derive(Debug)]
pub struct PowerLoss {
    root: PathBuf,
    model: Mutex<Model>,
    crashed: AtomicBool,
}

fn parent(p: &Path) -> PathBuf {
    p.parent().map(Path::to_path_buf).unwrap_or_default()
}

impl PowerLoss {
    pub fn new(root: &Path, crash_before: u64, seed: u64) -> Arc<PowerLoss> {
        Arc::new(PowerLoss {
            root: root.to_path_buf(),
            model: Mutex::new(Model {
                next_id: 0,
                live: BTreeMap::new(),
                durable: BTreeMap::new(),
                data: HashMap::new(),
                pending: Vec::new(),
                ops: 0,
                crash_before,
                image: None,
                rng: Rng(seed | 1),
            }),
            crashed: AtomicBool::new(false),
        })
    }

    /// True once the power has failed: what is acknowledged afterwards need not survive.
    pub fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// Fails the power now if it has not failed yet.
    pub fn crash_now(&self) {
        let mut m = self.model.lock();
        if m.image.is_none() {
            self.take_image(&mut m);
        }
    }

    pub fn image(&self) -> Image {
        self.model.lock().image.take().unwrap()
    }

    fn take_image(&self, m: &mut Model) {
        // Present only if every folder from the data directory down is durable.
        let reachable = |m: &Model, p: &Path| {
            p.ancestors()
                .skip(1)
                .take_while(|a| *a != self.root)
                .all(|a| m.durable.get(a) == Some(&Node::Dir))
        };
        let mut image = Image::default();
        let entries: Vec<(PathBuf, Node)> =
            m.durable.iter().map(|(p, n)| (p.clone(), *n)).collect();
        for (path, node) in entries {
            if !reachable(m, &path) {
                continue;
            }
            let rel = path.strip_prefix(&self.root).unwrap().to_path_buf();
            match node {
                Node::Dir => image.dirs.push(rel),
                Node::File(id) => {
                    let mut bytes = m.data.get(&id).cloned().unwrap_or_default();
                    // A torn tail: part of what was written since the last sync.
                    let live_path = m
                        .live
                        .iter()
                        .find(|(_, n)| **n == Node::File(id))
                        .map(|(p, _)| p.clone());
                    if let Some(now) = live_path.and_then(|p| fs::read(p).ok()) {
                        if now.len() > bytes.len() && now.starts_with(&bytes) {
                            let extra = now.len() - bytes.len();
                            let keep = 1 + m.rng.below(extra as u64) as usize;
                            match m.rng.below(3) {
                                0 => {}
                                1 => bytes.extend_from_slice(&now[bytes.len()..][..keep]),
                                _ => bytes.resize(bytes.len() + keep, 0),
                            }
                        }
                    }
                    image.files.push((rel, bytes));
                }
            }
        }
        m.image = Some(image);
        self.crashed.store(true, Ordering::SeqCst);
    }

    fn new_file(m: &mut Model, path: &Path) -> u64 {
        let id = m.next_id;
        m.next_id += 1;
        m.live.insert(path.to_path_buf(), Node::File(id));
        m.pending.push((
            parent(path),
            DirOp::Link(path.to_path_buf(), Node::File(id)),
        ));
        id
    }

    fn unlink_live(m: &mut Model, path: &Path) -> Option<Node> {
        let node = m.live.remove(path)?;
        if node == Node::Dir {
            m.live.retain(|p, _| !p.starts_with(path));
        }
        Some(node)
    }
}

impl FileHook for PowerLoss {
    fn before(&self, _op: FileOp, _path: &Path) -> io::Result<()> {
        let mut m = self.model.lock();
        if m.image.is_none() && !self.crashed() && m.ops >= m.crash_before {
            self.take_image(&mut m);
        }
        m.ops += 1;
        Ok(())
    }

    fn after(&self, op: FileOp, path: &Path, to: Option<&Path>) {
        if !path.starts_with(&self.root) {
            return;
        }
        let mut m = self.model.lock();
        match op {
            FileOp::Create if path.is_dir() => {
                // create_dir_all: the folder and any parents it lacked.
                let mut made: Vec<&Path> = path
                    .ancestors()
                    .take_while(|a| *a != self.root && !m.live.contains_key(*a))
                    .collect();
                made.reverse();
                for d in made {
                    m.live.insert(d.to_path_buf(), Node::Dir);
                    m.pending
                        .push((parent(d), DirOp::Link(d.to_path_buf(), Node::Dir)));
                }
            }
            FileOp::Create => {
                // Truncating a file that exists keeps its inode (and its synced data, until the
                // next sync); a new file is a new inode under a new name.
                if !matches!(m.live.get(path), Some(Node::File(_))) {
                    PowerLoss::new_file(&mut m, path);
                }
            }
            // Reserving blocks beyond the end changes no byte a reader (or a crash) sees.
            FileOp::Write | FileOp::Truncate | FileOp::Open | FileOp::Close | FileOp::Reserve => {}
            FileOp::SyncData => {
                let id = match m.live.get(path) {
                    Some(Node::File(id)) => *id,
                    _ => PowerLoss::new_file(&mut m, path),
                };
                let bytes = fs::read(path).unwrap_or_default();
                m.data.insert(id, bytes);
            }
            FileOp::SyncDir => {
                let pending = std::mem::take(&mut m.pending);
                for (dir, change) in pending {
                    if dir != path {
                        m.pending.push((dir, change));
                        continue;
                    }
                    match change {
                        DirOp::Link(p, node) => {
                            m.durable.insert(p, node);
                        }
                        DirOp::Unlink(p) => {
                            if m.durable.remove(&p) == Some(Node::Dir) {
                                m.durable.retain(|q, _| !q.starts_with(&p));
                            }
                        }
                    }
                }
            }
            FileOp::Rename => {
                let to = to.unwrap();
                if let Some(node) = PowerLoss::unlink_live(&mut m, path) {
                    m.live.insert(to.to_path_buf(), node);
                    m.pending
                        .push((parent(path), DirOp::Unlink(path.to_path_buf())));
                    m.pending
                        .push((parent(to), DirOp::Link(to.to_path_buf(), node)));
                }
            }
            FileOp::Remove => {
                if PowerLoss::unlink_live(&mut m, path).is_some() {
                    m.pending
                        .push((parent(path), DirOp::Unlink(path.to_path_buf())));
                }
            }
        }
    }
}

impl PowerLoss {
    /// File operations seen so far.
    pub fn ops(&self) -> u64 {
        self.model.lock().ops
    }
}
