//! Where a program's PTX comes from: `DIR/<fingerprint>.ptx`, else the compiler of this build (the result
//! written to `DIR` atomically: the on-disk module cache).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use loglinear_kernel::device::{fingerprint, PtxCompiler};
use loglinear_kernel::kernel::Program;
use loglinear_kernel::ScheduleConfig;

use crate::CudaError;

/// Where the PTX of a program came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Read from this file.
    File(PathBuf),
    /// Produced by the compiler of this build (and written to this file when a directory is set).
    Compiled(Option<PathBuf>),
}

/// The PTX of `program`: read from `dir`, else produced by `compiler` (and cached in `dir`).
pub(crate) fn ptx_for(
    program: &Program,
    config: &ScheduleConfig,
    dir: Option<&Path>,
    compiler: Option<&dyn PtxCompiler>,
) -> Result<(String, Origin), CudaError> {
    let key = fingerprint(program);
    let file = dir.map(|d| d.join(format!("{key}.ptx")));
    if let Some(path) = &file {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                tracing::debug!(program = %program.name, path = %path.display(), "PTX from the kernels directory");
                return Ok((text, Origin::File(path.clone())));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CudaError::Io { path: path.clone(), message: e.to_string() }),
        }
    }
    let Some(compiler) = compiler else {
        return Err(CudaError::MissingPtx {
            program: program.name.clone(),
            fingerprint: key,
            searched: file.map_or_else(
                || format!("no kernels directory: {} is not set", crate::KERNELS_ENV),
                |p| format!("looked for {}", p.display()),
            ),
            emit: emit_command(program, config, dir),
        });
    };
    let text =
        compiler.ptx(program).map_err(|message| CudaError::Compiler { program: program.name.clone(), message })?;
    if let (Some(d), Some(path)) = (dir, &file) {
        write_atomic(d, path, &text)?;
        tracing::info!(program = %program.name, path = %path.display(), "PTX compiled and cached");
    }
    Ok((text, Origin::Compiled(file)))
}

/// The `loglinear emit` command that writes the PTX of `program` (the run's B, T and H pick the same schedule as
/// any others once the configuration is given in full).
fn emit_command(program: &Program, config: &ScheduleConfig, dir: Option<&Path>) -> String {
    let variant = program.name.split('.').next().unwrap_or(&program.name);
    let (k, v) =
        program.specialised.as_ref().map_or(("K".to_string(), "V".to_string()), |s| (s.k.to_string(), s.v.to_string()));
    let out = dir.map_or_else(|| "DIR".to_string(), |d| d.display().to_string());
    let config = config.to_string().replace(' ', ",");
    format!("loglinear emit --target ptx --variant {variant} --shape B,T,H,{k},{v} --config {config} --out {out}")
}

/// Writes `text` to `path` (in `dir`, created if missing) through a temporary file renamed into place, so that
/// a reader never sees a partial module and concurrent writers of the same program do not clash.
fn write_atomic(dir: &Path, path: &Path, text: &str) -> Result<(), CudaError> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let io = |p: &Path, e: std::io::Error| CudaError::Io { path: p.to_path_buf(), message: e.to_string() };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let result = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program() -> (Program, ScheduleConfig) {
        let text = "\
program tiny.forward (C = 4, c = 2, NT = ceil(T/C), M = bitlen(NT-1), MS = M+1, LC = L, accum = f32)
  buffer x: input `x` f32 [B, T, H, V]
  buffer o: output f32 [B, T, H, V]
kernel 0 copy grid(b < B, i < NT, h < H) {
  %x: [C, V] = load x[b, i*C +: C, h, :]
  store o[b, i*C +: C, h, :] = %x
}
";
        let config = ScheduleConfig::with_chunk(4);
        let p = loglinear_kernel::parse_program(text).unwrap();
        (loglinear_kernel::specialise(&p, loglinear_kernel::Specialisation { k: 2, v: 3, c: 4 }, &config), config)
    }

    struct Failing;
    impl PtxCompiler for Failing {
        fn ptx(&self, _: &Program) -> Result<String, String> {
            Err("no NVPTX target".into())
        }
    }

    #[test]
    fn missing_ptx_names_the_program_its_file_and_the_command_that_writes_it() {
        let (p, config) = program();
        let dir = std::env::temp_dir().join(format!("loglinear-cuda-missing-{}", std::process::id()));
        let e = ptx_for(&p, &config, Some(&dir), None).unwrap_err().to_string();
        let file = dir.join(format!("{}.ptx", fingerprint(&p)));
        for want in [
            "no PTX for program `tiny.forward`".to_string(),
            format!("fingerprint {}", fingerprint(&p)),
            format!("looked for {}", file.display()),
            format!(
                "loglinear emit --target ptx --variant tiny --shape B,T,H,2,3 --config \
                 chunk=4,form=per_level,storage=f32,accum=f32,threads=auto,v_block=auto --out {}",
                dir.display()
            ),
            "LOGLINEAR_CUDA_PREPARE=1".to_string(),
        ] {
            assert!(e.contains(&want), "{want:?} not in: {e}");
        }
        let e = ptx_for(&p, &config, None, None).unwrap_err().to_string();
        assert!(
            e.contains("no kernels directory: LOGLINEAR_CUDA_KERNELS is not set") && e.contains("--out DIR"),
            "{e}"
        );
        // A failing compiler is named with the program; nothing is written.
        let e = ptx_for(&p, &config, Some(&dir), Some(&Failing)).unwrap_err().to_string();
        assert_eq!(e, "compiling `tiny.forward` to PTX: no NVPTX target");
        assert!(!dir.exists());
        // A file in the directory is used without a compiler.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&file, "// cached").unwrap();
        let (text, origin) = ptx_for(&p, &config, Some(&dir), Some(&Failing)).unwrap();
        assert_eq!((text.as_str(), origin), ("// cached", Origin::File(file)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_atomic_creates_the_directory_and_leaves_no_temporary() {
        let base = std::env::temp_dir().join(format!("loglinear-cuda-cache-{}", std::process::id()));
        let dir = base.join("nested");
        let path = dir.join("abc.ptx");
        write_atomic(&dir, &path, "// ptx").unwrap();
        write_atomic(&dir, &path, "// ptx 2").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "// ptx 2");
        let names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, vec!["abc.ptx".to_string()]);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
