//! Safetensors files in and out.
//!
//! Inputs are opened only when they are regular files, memory-mapped, and their header is checked against the
//! file's size before anything is decoded ([`header`]); tensors may be stored as F64, F32, F16 or BF16 and are
//! converted to f64 [`HostTensor`]s that remember their [`DType`], so that outputs can be written back in the
//! caller's precision. Outputs go through [`OutputFile`] ([`output`]): never over a non-regular file or an
//! input, written to a partial file beside the destination and renamed over it, so a failure never leaves a
//! partial or damaged file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use loglinear_ir::tensor::ShapeFmt;
use loglinear_ir::{HostTensor, TensorMap};
use safetensors::tensor::TensorView;

use crate::error::RuntimeError;

pub mod header;
pub mod output;

pub use header::{Layout, TensorEntry};
pub use output::{remove_partial_files, OutputFile, PARTIAL_SUFFIX};

/// The element types of tensors in files: those of the backend contract.
pub use loglinear_kernel::DType;

/// One tensor read from a file: its values in f64 and the dtype it was stored in.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedTensor {
    /// The values, converted to f64.
    pub tensor: HostTensor,
    /// The dtype in the file.
    pub dtype: DType,
}

/// The tensors of one safetensors file, by name.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedTensors {
    /// The file they came from.
    pub path: PathBuf,
    /// The tensors, by name.
    pub tensors: BTreeMap<String, LoadedTensor>,
}

impl LoadedTensors {
    /// A tensor by name.
    pub fn get(&self, name: &str) -> Option<&LoadedTensor> {
        self.tensors.get(name)
    }

    /// The dtype a tensor was stored in.
    pub fn dtype(&self, name: &str) -> Option<DType> {
        self.tensors.get(name).map(|t| t.dtype)
    }

    /// The tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the file held no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The f64 tensors as a [`TensorMap`] (copied).
    pub fn tensor_map(&self) -> TensorMap {
        self.tensors.iter().map(|(n, t)| (n.clone(), t.tensor.clone())).collect()
    }

    /// The f64 tensors as a [`TensorMap`].
    pub fn into_tensor_map(self) -> TensorMap {
        self.tensors.into_iter().map(|(n, t)| (n, t.tensor)).collect()
    }
}

/// A safetensors file opened for reading: memory-mapped (read-only), its layout parsed and checked against the
/// file's size before any element is touched (see [`header`]).
pub struct SafetensorsFile {
    path: PathBuf,
    map: memmap2::Mmap,
    layout: Layout,
}

impl fmt::Debug for SafetensorsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafetensorsFile").field("path", &self.path).field("layout", &self.layout).finish()
    }
}

impl SafetensorsFile {
    /// Opens `path`: only a regular file is opened (a FIFO, device, socket or directory is refused without
    /// reading), then it is mapped and its header checked.
    ///
    /// # Errors
    /// [`RuntimeError::FileMissing`], [`RuntimeError::Unreadable`] (not a regular file, no permission),
    /// [`RuntimeError::NotSafetensors`] naming the first problem of the header (see [`header::parse_layout`]).
    pub fn open(path: impl AsRef<Path>) -> Result<SafetensorsFile, RuntimeError> {
        let path = path.as_ref();
        let unreadable = |reason: String| RuntimeError::Unreadable { path: path.to_path_buf(), reason };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::FileMissing { path: path.to_path_buf() })
            }
            Err(e) => return Err(unreadable(e.to_string())),
        };
        if !meta.is_file() {
            return Err(unreadable(format!("it is {}", output::file_kind(&meta))));
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true);
        #[cfg(unix)]
        {
            // Never blocks, even if the path was swapped for a FIFO since the check above.
            use std::os::unix::fs::OpenOptionsExt;
            opts.custom_flags(libc::O_NONBLOCK);
        }
        let file = opts.open(path).map_err(|e| unreadable(e.to_string()))?;
        let meta = file.metadata().map_err(|e| unreadable(e.to_string()))?;
        if !meta.is_file() {
            return Err(unreadable(format!("it is {}", output::file_kind(&meta))));
        }
        let not_st = |reason: String| RuntimeError::NotSafetensors { path: path.to_path_buf(), reason };
        if meta.len() < 8 {
            return Err(not_st(format!(
                "the file is {} bytes; a safetensors file starts with an 8-byte header length",
                meta.len()
            )));
        }
        // SAFETY: the map is read-only and private to this process; a file truncated by another process while
        // mapped would fault, as reading it would fail, which the caller cannot prevent either way.
        // Populated at once: every byte is read by the run, and one populating call is cheaper than a fault per page.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
            .map_err(|e| unreadable(format!("cannot map it: {e}")))?;
        let layout = header::parse_layout(&map).map_err(not_st)?;
        Ok(SafetensorsFile { path: path.to_path_buf(), map, layout })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checked layout: every tensor's name, dtype, shape and byte range.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// A tensor's raw little-endian bytes, if the file has it.
    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.layout.get(name).map(|e| self.layout.bytes(&self.map, e))
    }

    /// Every tensor as a typed view of the mapped file, in its own dtype (no copy, no conversion).
    ///
    /// # Errors
    /// [`RuntimeError::UnsupportedDtype`] for a tensor that is not F64, F32, F16, BF16 or I64.
    pub fn views(&self) -> Result<loglinear_kernel::Bindings<'_>, RuntimeError> {
        let mut out = loglinear_kernel::Bindings::new();
        for e in &self.layout.entries {
            let unsupported = || RuntimeError::UnsupportedDtype {
                path: self.path.clone(),
                name: e.name.clone(),
                dtype: e.dtype.clone(),
                shape: ShapeFmt(&e.shape).to_string(),
            };
            let dtype = DType::from_name(&e.dtype).filter(|d| d.name() == e.dtype).ok_or_else(unsupported)?;
            let view = loglinear_kernel::TensorRef::new(dtype, &e.shape, self.layout.bytes(&self.map, e))
                .ok_or_else(unsupported)?;
            out.insert(e.name.clone(), view);
        }
        Ok(out)
    }
}

fn to_safetensors(d: DType) -> safetensors::Dtype {
    match d {
        DType::F64 => safetensors::Dtype::F64,
        DType::F32 => safetensors::Dtype::F32,
        DType::F16 => safetensors::Dtype::F16,
        DType::BF16 => safetensors::Dtype::BF16,
        DType::I64 => safetensors::Dtype::I64,
    }
}

/// Reads every tensor of a safetensors file (through [`SafetensorsFile`]: regular files only, header checked
/// before anything is allocated).
///
/// # Errors
/// [`RuntimeError::FileMissing`] when `path` does not exist, [`RuntimeError::Unreadable`] when it is not a
/// regular file or cannot be read, [`RuntimeError::NotSafetensors`] when its contents are not in the format
/// (the message names the tensor, its shape, dtype and byte range where one is at fault),
/// [`RuntimeError::UnsupportedDtype`] for a tensor that is not F64, F32, F16 or BF16.
pub fn read_safetensors(path: impl AsRef<Path>) -> Result<LoadedTensors, RuntimeError> {
    let file = SafetensorsFile::open(path)?;
    let loaded = decode_all(file.path(), &file.map, file.layout())?;
    tracing::debug!(path = %file.path().display(), tensors = loaded.len(), "read safetensors file");
    Ok(loaded)
}

/// Parses safetensors bytes already in memory, with the same checks as [`read_safetensors`]; `path` is only
/// used in messages.
///
/// # Errors
/// As [`read_safetensors`], less the file-system ones.
pub fn parse_safetensors(path: &Path, bytes: &[u8]) -> Result<LoadedTensors, RuntimeError> {
    let layout = header::parse_layout(bytes)
        .map_err(|reason| RuntimeError::NotSafetensors { path: path.to_path_buf(), reason })?;
    decode_all(path, bytes, &layout)
}

fn decode_all(path: &Path, bytes: &[u8], layout: &Layout) -> Result<LoadedTensors, RuntimeError> {
    let mut tensors = BTreeMap::new();
    for entry in &layout.entries {
        let dtype =
            DType::from_name(&entry.dtype).filter(|d| d.name() == entry.dtype && d.is_float()).ok_or_else(|| {
                RuntimeError::UnsupportedDtype {
                    path: path.to_path_buf(),
                    name: entry.name.clone(),
                    dtype: entry.dtype.clone(),
                    shape: ShapeFmt(&entry.shape).to_string(),
                }
            })?;
        let raw = layout.bytes(bytes, entry);
        let data = (0..entry.numel()).map(|i| dtype.read_f64(raw, i)).collect();
        tensors.insert(
            entry.name.clone(),
            LoadedTensor { tensor: HostTensor { shape: entry.shape.clone(), data }, dtype },
        );
    }
    Ok(LoadedTensors { path: path.to_path_buf(), tensors })
}

/// Serialises tensors in the safetensors format, each converted to its dtype.
///
/// # Errors
/// [`RuntimeError::Internal`] for a tensor whose data does not fill its shape.
pub fn encode_safetensors(tensors: &[(&str, &HostTensor, DType)]) -> Result<Vec<u8>, RuntimeError> {
    let mut encoded = Vec::with_capacity(tensors.len());
    for (name, t, dtype) in tensors {
        if t.data.len() != t.shape.iter().product::<usize>() {
            return Err(RuntimeError::Internal(format!(
                "tensor `{name}` has {} elements but shape {}",
                t.data.len(),
                ShapeFmt(&t.shape)
            )));
        }
        let mut bytes = Vec::with_capacity(t.data.len() * dtype.size());
        t.data.iter().for_each(|&x| dtype.push(&mut bytes, x));
        encoded.push((name.to_string(), t.shape.clone(), *dtype, bytes));
    }
    let views = encoded
        .iter()
        .map(|(name, shape, dtype, bytes)| {
            TensorView::new(to_safetensors(*dtype), shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| RuntimeError::Internal(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, None).map_err(|e| RuntimeError::Internal(format!("serialising: {e}")))
}

/// Serialises typed tensors in the safetensors format, each in its own dtype (no conversion).
///
/// # Errors
/// [`RuntimeError::Internal`] when the serialiser refuses a tensor.
pub fn encode_tensors(tensors: &[(&str, &loglinear_kernel::Tensor)]) -> Result<Vec<u8>, RuntimeError> {
    let views = tensors
        .iter()
        .map(|(name, t)| {
            TensorView::new(to_safetensors(t.dtype()), t.shape().to_vec(), t.bytes())
                .map(|v| (name.to_string(), v))
                .map_err(|e| RuntimeError::Internal(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, None).map_err(|e| RuntimeError::Internal(format!("serialising: {e}")))
}

/// The safetensors header (length prefix and JSON, padded to 8 bytes) of `tensors` laid out in the given order:
/// the file is this header followed by each tensor's bytes, which need not be copied together
/// ([`OutputFile::write_parts`]).
pub fn safetensors_header(tensors: &[(&str, &loglinear_kernel::Tensor)]) -> Vec<u8> {
    let mut json = String::from("{");
    let mut off = 0usize;
    for (i, (name, t)) in tensors.iter().enumerate() {
        let shape: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
        let end = off + t.bytes().len();
        let escaped: String = name
            .chars()
            .flat_map(|c| match c {
                '"' => vec!['\\', '"'],
                '\\' => vec!['\\', '\\'],
                c => vec![c],
            })
            .collect();
        json.push_str(&format!(
            "{}\"{escaped}\":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{off},{end}]}}",
            if i > 0 { "," } else { "" },
            t.dtype().name(),
            shape.join(",")
        ));
        off = end;
    }
    json.push('}');
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out
}

/// Writes tensors to a safetensors file atomically (see [`OutputFile`]): the destination must be a regular file
/// or absent, in an existing directory; the bytes go to `.<name>.loglinear-partial` beside it, which is renamed
/// over it. On any failure nothing changes at `path` and the partial file is removed.
///
/// # Errors
/// [`RuntimeError::Write`] when the destination is refused or cannot be written; [`RuntimeError::Internal`] for
/// a tensor whose data does not fill its shape.
pub fn write_safetensors_atomic(
    path: impl AsRef<Path>,
    tensors: &[(&str, &HostTensor, DType)],
) -> Result<(), RuntimeError> {
    let out = OutputFile::prepare(path, &[])?;
    let bytes = encode_safetensors(tensors)?;
    out.write(&bytes)?;
    tracing::debug!(path = %out.path().display(), tensors = tensors.len(), bytes = bytes.len(), "wrote safetensors file");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_streamed_header_and_data_are_a_safetensors_file() {
        let a = loglinear_kernel::Tensor::from_f64(DType::F32, vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = loglinear_kernel::Tensor::from_f64(DType::I64, vec![2], &[7.0, 8.0]);
        let mut file = safetensors_header(&[("o", &a), ("we\"ird", &b)]);
        assert_eq!((file.len() - 8) % 8, 0);
        file.extend_from_slice(a.bytes());
        file.extend_from_slice(b.bytes());
        let st = safetensors::SafeTensors::deserialize(&file).unwrap();
        assert_eq!(st.tensor("o").unwrap().data(), a.bytes());
        assert_eq!(st.tensor("o").unwrap().shape(), &[2, 3]);
        assert_eq!(st.tensor("we\"ird").unwrap().data(), b.bytes());
        assert_eq!(encode_tensors(&[("o", &a)]).unwrap().len(), safetensors_header(&[("o", &a)]).len() + 24);
    }

    use super::*;

    #[test]
    fn roundtrip_every_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let t = HostTensor::new(vec![2, 3], vec![0.5, -1.25, 2.0, 3.0, -0.0, 1024.0]);
        for d in DType::FLOATS {
            let p = dir.path().join(format!("{d}.safetensors"));
            write_safetensors_atomic(&p, &[("x", &t, d), ("y", &t, DType::F64)]).unwrap();
            let l = read_safetensors(&p).unwrap();
            assert_eq!(l.names(), vec!["x", "y"]);
            assert_eq!(l.dtype("x"), Some(d));
            assert_eq!(l.get("x").unwrap().tensor, t, "{d}: values exactly representable");
        }
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(entries.len(), 4, "no temporary files left");
    }

    #[test]
    fn write_failure_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let t = HostTensor::zeros(vec![2]);
        let p = dir.path().join("nope").join("o.safetensors");
        let e = write_safetensors_atomic(&p, &[("o", &t, DType::F32)]).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let e = write_safetensors_atomic(dir.path(), &[("o", &t, DType::F32)]).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn read_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.safetensors");
        let e = read_safetensors(&missing).unwrap_err();
        assert!(matches!(e, RuntimeError::FileMissing { .. }) && e.to_string().contains("missing.safetensors"));
        let e = read_safetensors(dir.path()).unwrap_err();
        assert!(matches!(e, RuntimeError::Unreadable { .. }) && e.to_string().contains("directory"), "{e}");
        let junk = dir.path().join("junk.bin");
        std::fs::write(&junk, b"\xff\xff\xff\xff\xff\xff\xff\x7f not safetensors").unwrap();
        let e = read_safetensors(&junk).unwrap_err();
        assert!(matches!(e, RuntimeError::NotSafetensors { .. }) && e.to_string().contains("junk.bin"), "{e}");
    }

    #[test]
    fn unsupported_dtype_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("i32.safetensors");
        let bytes = [1u8, 0, 0, 0, 2, 0, 0, 0];
        let v = TensorView::new(safetensors::Dtype::I32, vec![2], &bytes).unwrap();
        std::fs::write(&p, safetensors::serialize([("idx", v)], None).unwrap()).unwrap();
        let e = read_safetensors(&p).unwrap_err().to_string();
        assert!(e.contains("`idx`") && e.contains("I32") && e.contains("F64, F32, F16, BF16"), "{e}");
    }
}
