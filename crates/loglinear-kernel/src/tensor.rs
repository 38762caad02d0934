//! Typed tensors: the values that cross the backend contract, kept in their element type end to end.
//!
//! [`TensorRef`] is a borrowed view — a dtype, a shape and little-endian bytes at any alignment — over memory
//! the caller owns (a memory-mapped file, a [`Tensor`], a device readback). [`Tensor`] owns its bytes. Nothing
//! here widens to f64 unless asked ([`TensorRef::to_f64`]).

use std::fmt;

/// Element types of tensors and buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// IEEE binary64.
    F64,
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    BF16,
    /// Signed 64-bit integer (positions, `cu_seqlens`).
    I64,
}

impl DType {
    /// The floating-point types, widest first.
    pub const FLOATS: [DType; 4] = [DType::F64, DType::F32, DType::F16, DType::BF16];

    /// The name as safetensors spells it (`F64`, `F32`, `F16`, `BF16`, `I64`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F64 => "F64",
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::I64 => "I64",
        }
    }

    /// The lower-case name used in the kernel IR's text form (`f64`, `f32`, `f16`, `bf16`, `i64`).
    pub fn ir_name(self) -> &'static str {
        match self {
            DType::F64 => "f64",
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I64 => "i64",
        }
    }

    /// Parses either spelling.
    pub fn from_name(s: &str) -> Option<DType> {
        [DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64]
            .into_iter()
            .find(|d| d.name() == s || d.ir_name() == s)
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// Whether it is a floating-point type.
    pub fn is_float(self) -> bool {
        self != DType::I64
    }

    /// Element `i` of little-endian `bytes` of this type, as f64 (`bytes` must hold it).
    #[inline]
    pub fn read_f64(self, bytes: &[u8], i: usize) -> f64 {
        let s = self.size();
        let b = &bytes[i * s..i * s + s];
        match self {
            DType::F64 => f64::from_le_bytes(b.try_into().expect("8 bytes")),
            DType::F32 => f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64,
            DType::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f64(),
            DType::BF16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f64(),
            DType::I64 => i64::from_le_bytes(b.try_into().expect("8 bytes")) as f64,
        }
    }

    /// Element `i` as f32 (rounded from f64 and i64).
    #[inline]
    pub fn read_f32(self, bytes: &[u8], i: usize) -> f32 {
        match self {
            DType::F32 => f32::from_le_bytes(bytes[i * 4..i * 4 + 4].try_into().expect("4 bytes")),
            DType::F16 => half::f16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]).to_f32(),
            DType::BF16 => half::bf16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]).to_f32(),
            _ => self.read_f64(bytes, i) as f32,
        }
    }

    /// Appends `x` rounded to this type (round to nearest; i64 truncates toward zero).
    #[inline]
    pub fn push(self, out: &mut Vec<u8>, x: f64) {
        match self {
            DType::F64 => out.extend_from_slice(&x.to_le_bytes()),
            DType::F32 => out.extend_from_slice(&(x as f32).to_le_bytes()),
            DType::F16 => out.extend_from_slice(&half::f16::from_f64(x).to_le_bytes()),
            DType::BF16 => out.extend_from_slice(&half::bf16::from_f64(x).to_le_bytes()),
            DType::I64 => out.extend_from_slice(&(x as i64).to_le_bytes()),
        }
    }

    /// Whether `x`, rounded to this type, is finite (always true for i64).
    pub fn is_finite_in(self, x: f64) -> bool {
        match self {
            DType::F64 => x.is_finite(),
            DType::F32 => (x as f32).is_finite(),
            DType::F16 => half::f16::from_f64(x).is_finite(),
            DType::BF16 => half::bf16::from_f64(x).is_finite(),
            DType::I64 => true,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// IEEE binary16 bits to f32, exactly, by bit manipulation (no F16C needed; branch-light for the hot loops).
#[inline]
pub fn f16_bits_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    match exp {
        0 => {
            // zero or subnormal: man · 2^-24
            let f = man as f32 * (1.0 / 16_777_216.0);
            f32::from_bits(f.to_bits() | sign)
        }
        31 => f32::from_bits(sign | 0x7f80_0000 | (man << 13)),
        e => f32::from_bits(sign | ((e + 112) << 23) | (man << 13)),
    }
}

/// bfloat16 bits to f32 (exact: the high half of an f32).
#[inline]
pub fn bf16_bits_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// A borrowed tensor: dtype, shape (row-major) and little-endian bytes (any alignment).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorRef<'a> {
    /// Element type.
    pub dtype: DType,
    /// Shape, outermost first.
    pub shape: &'a [usize],
    /// `numel · dtype.size()` bytes.
    pub bytes: &'a [u8],
}

impl<'a> TensorRef<'a> {
    /// A view; `None` when the byte length disagrees with the shape.
    pub fn new(dtype: DType, shape: &'a [usize], bytes: &'a [u8]) -> Option<TensorRef<'a>> {
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
        (n.checked_mul(dtype.size())? == bytes.len()).then_some(TensorRef { dtype, shape, bytes })
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.bytes.len() / self.dtype.size()
    }

    /// Element `i` as f64.
    #[inline]
    pub fn get(&self, i: usize) -> f64 {
        self.dtype.read_f64(self.bytes, i)
    }

    /// Every element as f64 (a copy: for tests, oracles and small tensors).
    pub fn to_f64(&self) -> Vec<f64> {
        (0..self.numel()).map(|i| self.get(i)).collect()
    }

    /// Writes elements `start..start + dst.len()` into `dst` as f32.
    pub fn read_f32_into(&self, start: usize, dst: &mut [f32]) {
        let s = self.dtype.size();
        let src = &self.bytes[start * s..(start + dst.len()) * s];
        // One loop per type (no per-element dispatch): this is the hot path of every run's input upload.
        match self.dtype {
            DType::F32 => {
                for (d, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
                    *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            DType::F16 => {
                for (d, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
                    *d = f16_bits_to_f32(u16::from_le_bytes([c[0], c[1]]));
                }
            }
            DType::BF16 => {
                for (d, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
                    *d = bf16_bits_to_f32(u16::from_le_bytes([c[0], c[1]]));
                }
            }
            _ => {
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = self.dtype.read_f32(self.bytes, start + j);
                }
            }
        }
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Tensor {
        Tensor { dtype: self.dtype, shape: self.shape.to_vec(), bytes: self.bytes.to_vec() }
    }
}

/// An owned tensor: dtype, shape and little-endian bytes.
#[derive(Clone, PartialEq)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor({} {:?}, {} bytes)", self.dtype, self.shape, self.bytes.len())
    }
}

impl Tensor {
    /// A tensor from its bytes; `None` when their length disagrees with the shape.
    pub fn from_bytes(dtype: DType, shape: Vec<usize>, bytes: Vec<u8>) -> Option<Tensor> {
        TensorRef::new(dtype, &shape, &bytes)?;
        Some(Tensor { dtype, shape, bytes })
    }

    /// Zeros.
    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor { dtype, shape, bytes: vec![0; n * dtype.size()] }
    }

    /// From f32 values (`data.len()` must be the shape's product).
    pub fn from_f32(shape: Vec<usize>, data: &[f32]) -> Tensor {
        assert_eq!(data.len(), shape.iter().product::<usize>(), "data does not fill the shape");
        let mut bytes = Vec::with_capacity(data.len() * 4);
        data.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
        Tensor { dtype: DType::F32, shape, bytes }
    }

    /// From f32 values, rounded to `dtype` (`data.len()` must be the shape's product).
    pub fn from_f32_as(dtype: DType, shape: Vec<usize>, data: &[f32]) -> Tensor {
        assert_eq!(data.len(), shape.iter().product::<usize>(), "data does not fill the shape");
        let mut bytes = Vec::with_capacity(data.len() * dtype.size());
        match dtype {
            DType::F32 => data.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes())),
            DType::F16 => data.iter().for_each(|x| bytes.extend_from_slice(&half::f16::from_f32(*x).to_le_bytes())),
            DType::BF16 => data.iter().for_each(|x| bytes.extend_from_slice(&half::bf16::from_f32(*x).to_le_bytes())),
            _ => data.iter().for_each(|&x| dtype.push(&mut bytes, x as f64)),
        }
        Tensor { dtype, shape, bytes }
    }

    /// From f64 values, rounded to `dtype` (`data.len()` must be the shape's product).
    pub fn from_f64(dtype: DType, shape: Vec<usize>, data: &[f64]) -> Tensor {
        assert_eq!(data.len(), shape.iter().product::<usize>(), "data does not fill the shape");
        let mut bytes = Vec::with_capacity(data.len() * dtype.size());
        data.iter().for_each(|&x| dtype.push(&mut bytes, x));
        Tensor { dtype, shape, bytes }
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The little-endian bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The little-endian bytes, writable (the shape and dtype stay).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// A view of the tensor.
    pub fn view(&self) -> TensorRef<'_> {
        TensorRef { dtype: self.dtype, shape: &self.shape, bytes: &self.bytes }
    }

    /// The same values rounded to `dtype` (a copy; `self` when it already has that type).
    pub fn convert(self, dtype: DType) -> Tensor {
        if dtype == self.dtype {
            return self;
        }
        let v = self.view();
        let mut bytes = Vec::with_capacity(v.numel() * dtype.size());
        (0..v.numel()).for_each(|i| dtype.push(&mut bytes, v.get(i)));
        Tensor { dtype, shape: self.shape, bytes }
    }

    /// Every element as f64 (a copy).
    pub fn to_f64(&self) -> Vec<f64> {
        self.view().to_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_views() {
        let x = [0.5, -1.25, 3.0, 1024.0];
        for d in DType::FLOATS {
            let t = Tensor::from_f64(d, vec![2, 2], &x);
            assert_eq!(t.bytes().len(), 4 * d.size());
            assert_eq!(t.to_f64(), x, "{d}");
            let mut f = [0f32; 2];
            t.view().read_f32_into(2, &mut f);
            assert_eq!(f, [3.0, 1024.0]);
            assert_eq!(t.clone().convert(DType::F32).to_f64(), x);
        }
        assert!(TensorRef::new(DType::F32, &[3], &[0; 8]).is_none());
        assert!(Tensor::from_bytes(DType::F16, vec![usize::MAX, 4], vec![]).is_none());
        assert_eq!(DType::from_name("bf16"), Some(DType::BF16));
        assert_eq!(DType::from_name("BF16"), Some(DType::BF16));
        assert!(!DType::F16.is_finite_in(7e4) && DType::F32.is_finite_in(7e4));
        // The bit-level f16 conversion agrees with `half` on every one of the 65536 values.
        for h in 0..=u16::MAX {
            let (a, b) = (f16_bits_to_f32(h), half::f16::from_bits(h).to_f32());
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{h:#06x}: {a} vs {b}");
        }
    }
}
