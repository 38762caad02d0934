//! The safetensors container, parsed defensively.
//!
//! A safetensors file is an 8-byte little-endian header length `n`, `n` bytes of JSON mapping tensor names to
//! `{dtype, shape, data_offsets}` (plus an optional `__metadata__` map of strings), then the data buffer. This
//! parser trusts none of it: the header is at most [`MAX_HEADER_BYTES`], names are unique, every shape has at
//! most [`MAX_RANK`] dimensions, `shape × dtype size` equals the tensor's byte range (without overflow), and the
//! byte ranges, sorted, tile the data buffer exactly. All of it is checked before a single element is decoded,
//! so no file can make the caller allocate more than a small multiple of the file's own size.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Range;

use loglinear_ir::tensor::ShapeFmt;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// The longest JSON header accepted, in bytes (100 MB).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The most dimensions a tensor may have.
pub const MAX_RANK: usize = 16;

/// One tensor's entry in the header, checked against the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    /// The tensor's name.
    pub name: String,
    /// Its dtype as safetensors spells it (`F32`, `BF16`, `I64`, ...).
    pub dtype: String,
    /// Bytes per element of that dtype.
    pub elem_size: usize,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its bytes, relative to the start of the data buffer.
    pub range: Range<usize>,
}

impl TensorEntry {
    /// Number of elements (`shape` product; checked not to overflow when the entry was parsed).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

impl fmt::Display for TensorEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tensor `{}` (shape {}, dtype {}, bytes {}..{})",
            self.name,
            ShapeFmt(&self.shape),
            self.dtype,
            self.range.start,
            self.range.end
        )
    }
}

/// A parsed and checked safetensors layout: where each tensor's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The entries, in the file's data order (sorted by byte offset).
    pub entries: Vec<TensorEntry>,
    /// Offset of the data buffer from the start of the file (8 + header length).
    pub data_start: usize,
}

impl Layout {
    /// The entry of a tensor by name.
    pub fn get(&self, name: &str) -> Option<&TensorEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// A tensor's bytes inside `file` (the whole file's bytes the layout was parsed from).
    pub fn bytes<'a>(&self, file: &'a [u8], entry: &TensorEntry) -> &'a [u8] {
        &file[self.data_start + entry.range.start..self.data_start + entry.range.end]
    }
}

/// Bytes per element of a safetensors dtype name; `None` for a name that is not a safetensors dtype, or a
/// sub-byte type (F4, F6_*), which no loglinear tensor uses.
pub fn dtype_size(name: &str) -> Option<usize> {
    Some(match name {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" | "C64" => 8,
        _ => return None,
    })
}

/// Parses and checks the layout of a safetensors file held in `file`.
///
/// # Errors
/// A one-line description of the first problem found: the file too short, the header length beyond the file
/// or above [`MAX_HEADER_BYTES`], JSON that is not a header (with its position), a duplicate or malformed entry,
/// an unknown dtype, a shape whose element count disagrees with its byte range, byte ranges outside the data
/// buffer, overlapping or leaving gaps. Each message about a tensor names it, its shape, dtype and byte range.
pub fn parse_layout(file: &[u8]) -> Result<Layout, String> {
    let len = file.len() as u64;
    if len < 8 {
        return Err(format!("the file is {len} bytes; a safetensors file starts with an 8-byte header length"));
    }
    let n = u64::from_le_bytes(file[..8].try_into().expect("8 bytes"));
    if n > MAX_HEADER_BYTES {
        return Err(format!("the header claims {n} bytes; at most {MAX_HEADER_BYTES} are accepted"));
    }
    if n > len - 8 {
        return Err(format!("the header claims {n} bytes but the file has only {} after the length", len - 8));
    }
    let n = n as usize;
    let json = &file[8..8 + n];
    let header: RawHeader = serde_json::from_slice(json).map_err(|e| format!("bad header: {e}"))?;
    let data_len = file.len() - 8 - n;
    let mut entries = Vec::with_capacity(header.0.len());
    for raw in header.0 {
        let shape_txt = ShapeFmt(&raw.shape).to_string();
        let where_ = |what: String| {
            format!(
                "tensor `{}` (shape {shape_txt}, dtype {}, bytes {}..{}): {what}",
                raw.name, raw.dtype, raw.offsets.0, raw.offsets.1
            )
        };
        let elem_size =
            dtype_size(&raw.dtype).ok_or_else(|| where_(format!("unknown dtype `{}`", raw.dtype.escape_debug())))?;
        let (start, end) = raw.offsets;
        if start > end {
            return Err(where_("its byte range ends before it starts".into()));
        }
        if end > data_len as u64 {
            return Err(where_(format!("its bytes end beyond the data buffer ({data_len} bytes)")));
        }
        let numel = raw.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        let bytes = numel.and_then(|n| n.checked_mul(elem_size));
        match bytes {
            Some(b) if b as u64 == end - start => {}
            Some(b) => {
                return Err(where_(format!("the shape needs {b} bytes but its byte range holds {}", end - start)))
            }
            None => return Err(where_("its element count overflows".into())),
        }
        entries.push(TensorEntry {
            name: raw.name,
            dtype: raw.dtype,
            elem_size,
            shape: raw.shape,
            range: start as usize..end as usize,
        });
    }
    entries.sort_by_key(|e| (e.range.start, e.range.end));
    let mut at = 0usize;
    for e in &entries {
        if e.range.start < at {
            return Err(format!("{e}: overlaps the previous tensor's bytes (which end at {at})"));
        }
        if e.range.start > at {
            return Err(format!("{e}: leaves a gap of {} bytes before it", e.range.start - at));
        }
        at = e.range.end;
    }
    if at != data_len {
        return Err(format!("the tensors hold {at} bytes but the data buffer has {data_len}"));
    }
    Ok(Layout { entries, data_start: 8 + n })
}

/// One header entry as written in the JSON.
struct RawEntry {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    offsets: (u64, u64),
}

/// The header's tensor entries, in the order written; `__metadata__` is checked and dropped.
struct RawHeader(Vec<RawEntry>);

impl<'de> Deserialize<'de> for RawHeader {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HeaderVisitor;
        impl<'de> Visitor<'de> for HeaderVisitor {
            type Value = RawHeader;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object mapping tensor names to {dtype, shape, data_offsets}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader, A::Error> {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if !seen.insert(name.clone()) {
                        return Err(de::Error::custom(format!("duplicate tensor name `{}`", name.escape_debug())));
                    }
                    if name == "__metadata__" {
                        map.next_value::<BTreeMap<String, String>>().map_err(|e| {
                            de::Error::custom(format!("`__metadata__` must map strings to strings ({e})"))
                        })?;
                        continue;
                    }
                    let e: EntryFields = map
                        .next_value()
                        .map_err(|e| de::Error::custom(format!("tensor `{}`: {e}", name.escape_debug())))?;
                    out.push(RawEntry { name, dtype: e.dtype, shape: e.shape.0, offsets: e.data_offsets });
                }
                Ok(RawHeader(out))
            }
        }
        d.deserialize_map(HeaderVisitor)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFields {
    dtype: String,
    shape: Shape,
    data_offsets: (u64, u64),
}

/// A shape of at most [`MAX_RANK`] dimensions (refused while parsing, so a huge list is never collected).
struct Shape(Vec<usize>);

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ShapeVisitor;
        impl<'de> Visitor<'de> for ShapeVisitor {
            type Value = Shape;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a list of at most {MAX_RANK} non-negative integers")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
                let mut dims = Vec::new();
                while let Some(d) = seq.next_element::<u64>()? {
                    if dims.len() == MAX_RANK {
                        return Err(de::Error::custom(format!("a shape has at most {MAX_RANK} dimensions")));
                    }
                    dims.push(usize::try_from(d).map_err(|_| de::Error::custom(format!("dimension {d} too large")))?);
                }
                Ok(Shape(dims))
            }
        }
        d.deserialize_seq(ShapeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut f = (header.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(header.as_bytes());
        f.extend_from_slice(data);
        f
    }

    #[test]
    fn parses_a_valid_layout_in_data_order() {
        let h = r#"{"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"__metadata__":{"format":"pt"}}"#;
        let f = file(h, &[0u8; 12]);
        let l = parse_layout(&f).unwrap();
        assert_eq!(l.entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(l.bytes(&f, l.get("b").unwrap()).len(), 8);
    }

    #[test]
    fn rejects_each_lie() {
        let ok = r#"{"q":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#;
        assert!(parse_layout(&file(ok, &[0; 24])).is_ok());
        let cases: &[(&str, usize, &str)] = &[
            (
                r#"{"q":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"q":{"dtype":"F32","shape":[0],"data_offsets":[24,24]}}"#,
                24,
                "duplicate tensor name `q`",
            ),
            (
                r#"{"q":{"dtype":"F32","shape":[2,4],"data_offsets":[0,24]}}"#,
                24,
                "tensor `q` (shape [2, 4], dtype F32, bytes 0..24): the shape needs 32 bytes",
            ),
            (r#"{"q":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#, 20, "beyond the data buffer"),
            (r#"{"q":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#, 28, "data buffer has 28"),
            (r#"{"q":{"dtype":"F32","shape":[2,3],"data_offsets":[24,0]}}"#, 24, "ends before it starts"),
            (r#"{"q":{"dtype":"X9","shape":[2,3],"data_offsets":[0,24]}}"#, 24, "unknown dtype `X9`"),
            (
                r#"{"q":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,24]}}"#,
                24,
                "overflows",
            ),
            (
                r#"{"q":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}}"#,
                4,
                "at most 16 dimensions",
            ),
            (
                r#"{"q":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"k":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#,
                6,
                "overlaps",
            ),
            (r#"{"q":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8, "gap of 4 bytes"),
            (r#"{"q":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}"#, 4, "unknown field `extra`"),
            (r#"[1,2]"#, 0, "bad header"),
        ];
        for (h, n, want) in cases {
            let e = parse_layout(&file(h, &vec![0; *n])).unwrap_err();
            assert!(e.contains(want), "{h}: got {e:?}, want {want:?}");
        }
        assert!(parse_layout(b"\x01\x02").unwrap_err().contains("8-byte header length"));
        let mut huge = (MAX_HEADER_BYTES + 1).to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        assert!(parse_layout(&huge).unwrap_err().contains("at most 100000000"));
        let mut long = 1000u64.to_le_bytes().to_vec();
        long.extend_from_slice(b"{}");
        assert!(parse_layout(&long).unwrap_err().contains("only 2 after"));
    }
}
