//! The CUDA driver: probing it without panicking, opening a device, loading PTX.

use std::ffi::{c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use cudarc::driver::sys;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};
use cudarc::nvrtc::Ptx;

use crate::CudaError;

/// The multiprocessor count assumed when the device does not say (the H200's).
pub const DEFAULT_MULTIPROCESSORS: usize = 132;

/// An opened device: its primary context and the stream every launch and copy of this backend goes to.
pub(crate) struct Gpu {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) ordinal: usize,
    pub(crate) name: String,
    pub(crate) multiprocessors: usize,
}

/// Whether `libcuda` can be loaded with every entry point this build uses. cudarc's own loader panics when the
/// library or one of its symbols is missing; the probe catches that, so it never panics.
fn driver_present() -> Result<(), CudaError> {
    // SAFETY: loads the driver library with libloading and drops it; no driver function is called.
    match catch_unwind(|| unsafe { sys::is_culib_present() }) {
        Ok(true) => Ok(()),
        Ok(false) => Err(CudaError::NoDriver(
            "searched the dynamic loader's path for libcuda.so, libcuda.so.1 and the other usual names".into(),
        )),
        Err(_) => Err(CudaError::NoDriver(
            "it lacks a driver API entry point of CUDA 12.8: the driver is too old (the backend needs driver 570 \
             or newer)"
                .into(),
        )),
    }
}

/// Opens device `ordinal`: probes the driver, initialises it, retains the device's primary context.
pub(crate) fn open(ordinal: usize) -> Result<Gpu, CudaError> {
    driver_present()?;
    let no_device = |message: String| CudaError::NoDevice { ordinal, message };
    let ctx = match catch_unwind(|| CudaContext::new(ordinal)) {
        Ok(Ok(ctx)) => ctx,
        Ok(Err(e)) => {
            let count = catch_unwind(CudaContext::device_count).ok().and_then(|r| r.ok()).unwrap_or(0);
            return Err(no_device(format!("{e} ({count} CUDA devices found)")));
        }
        Err(_) => return Err(no_device("the CUDA driver panicked while initialising".into())),
    };
    // One stream only: cudarc's cross-stream event tracking would cost two events per allocation for nothing.
    // SAFETY: every allocation, copy and launch of this backend goes to `stream`, so no cross-stream
    // synchronisation is needed.
    unsafe { ctx.disable_event_tracking() };
    let name = ctx.name().map_err(|e| no_device(format!("reading its name: {e}")))?;
    let multiprocessors = ctx
        .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        .ok()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MULTIPROCESSORS);
    let stream = ctx.default_stream();
    tracing::info!(device = %name, ordinal, multiprocessors, "CUDA device opened");
    Ok(Gpu { ctx, stream, ordinal, name, multiprocessors })
}

impl Gpu {
    /// Loads PTX `text` as a module and looks up `symbols`. A module the driver rejects is loaded once more to
    /// read the JIT compiler's error log into the message.
    pub(crate) fn load(
        &self,
        program: &str,
        text: &str,
        symbols: &[String],
    ) -> Result<(Arc<CudaModule>, Vec<CudaFunction>), CudaError> {
        if text.contains('\0') {
            return Err(CudaError::Load { program: program.into(), message: "the PTX text holds a NUL byte".into() });
        }
        let module = self.ctx.load_module(Ptx::from_src(text)).map_err(|e| CudaError::Load {
            program: program.into(),
            message: match self.jit_log(text) {
                Some(log) => format!("{e}: {log}"),
                None => e.to_string(),
            },
        })?;
        let functions = symbols
            .iter()
            .map(|s| {
                module.load_function(s).map_err(|e| CudaError::Load {
                    program: program.into(),
                    message: format!("entry point `{s}`: {e}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((module, functions))
    }

    /// The JIT compiler's error log for PTX `text` (which the driver rejected), when it wrote one.
    fn jit_log(&self, text: &str) -> Option<String> {
        let src = CString::new(text).ok()?;
        self.ctx.bind_to_thread().ok()?;
        let mut log = vec![0u8; 16 * 1024];
        let mut options =
            [sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER, sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES];
        let mut values: [*mut c_void; 2] = [log.as_mut_ptr().cast(), log.len() as *mut c_void];
        let mut module: sys::CUmodule = std::ptr::null_mut();
        // SAFETY: `src` is NUL-terminated PTX; the log buffer outlives the call and its size is passed with it;
        // a module that loads after all is unloaded at once.
        let r = catch_unwind(AssertUnwindSafe(|| unsafe {
            let r = sys::cuModuleLoadDataEx(
                &mut module,
                src.as_ptr().cast(),
                options.len() as u32,
                options.as_mut_ptr(),
                values.as_mut_ptr(),
            );
            if r == sys::CUresult::CUDA_SUCCESS {
                sys::cuModuleUnload(module);
            }
            r
        }))
        .ok()?;
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        let text = String::from_utf8_lossy(&log[..end]).trim().replace('\n', "; ");
        (r != sys::CUresult::CUDA_SUCCESS && !text.is_empty()).then_some(text)
    }
}
