//! MLIR's ExecutionEngine over a module lowered with [`crate::lower::CPU_TO_LLVM`].

use melior::ir::Module;
use melior::ExecutionEngine;

use crate::MlirError;

/// The descriptor of a one-dimensional memref (`memref<?xT>`), as the C interface passes it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MemRef1<T> {
    /// The allocation.
    pub allocated: *mut T,
    /// The aligned start (the same here).
    pub aligned: *mut T,
    /// Offset in elements.
    pub offset: i64,
    /// Size in elements.
    pub size: i64,
    /// Stride in elements.
    pub stride: i64,
}

impl<T> MemRef1<T> {
    /// A descriptor over `data` (which must outlive every call that uses it).
    pub fn new(data: &mut [T]) -> Self {
        let p = data.as_mut_ptr();
        MemRef1 { allocated: p, aligned: p, offset: 0, size: data.len() as i64, stride: 1 }
    }
}

/// A JIT-compiled module.
pub struct Jit {
    engine: ExecutionEngine,
}

impl Jit {
    /// Compiles a module in the LLVM dialect at optimisation level `opt` (0–3).
    pub fn new(module: &Module<'_>, opt: usize) -> Self {
        // LOGLINEAR_MLIR_OBJECT (a file path): the compiled object is written there, for `objdump -d`.
        let dump = std::env::var("LOGLINEAR_MLIR_OBJECT").ok();
        let engine = ExecutionEngine::new(module, opt, &[], dump.is_some(), false);
        if let Some(path) = dump {
            engine.dump_to_object_file(&path);
        }
        Jit { engine }
    }

    /// The address of function `name` (a function with scalar and pointer arguments has the C ABI as is).
    ///
    /// # Errors
    /// [`MlirError::Jit`] when the module has no such function.
    pub fn lookup(&self, name: &str) -> Result<*mut (), MlirError> {
        let p = self.engine.lookup(name);
        if p.is_null() {
            return Err(MlirError::Jit(format!("no function `{name}` in the module")));
        }
        Ok(p)
    }

    /// The address of `_mlir_ciface_<name>`, the C-interface wrapper of a function marked
    /// `llvm.emit_c_interface`.
    ///
    /// # Errors
    /// [`MlirError::Jit`] when the module has no such function.
    pub fn c_interface(&self, name: &str) -> Result<*mut (), MlirError> {
        let p = self.engine.lookup(&format!("_mlir_ciface_{name}"));
        if p.is_null() {
            return Err(MlirError::Jit(format!("no C interface for `{name}` (llvm.emit_c_interface missing?)")));
        }
        Ok(p)
    }
}
