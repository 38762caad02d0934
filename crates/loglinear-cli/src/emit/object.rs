//! `emit --target object`: a program compiled ahead of time into a native object file for this CPU (x86-64 SysV,
//! position-independent) by Cranelift or, with `--codegen mlir` in a build with MLIR, by MLIR and LLVM's back end
//! (the schedule of the `mlir-cpu` backend), with a plain C99 header declaring its entry points and generating the
//! helpers a host needs: the sizes, buffer order and element counts, which buffers start at zero, allocation and
//! a single-threaded run of every kernel (`docs/EMIT.md`).
//!
//! Symbols in `<fingerprint>.o`: `ll_<fingerprint>_k<i>_<kernel>` per kernel (the kernel ABI of
//! [`loglinear::kernel::host::KernelEntry`]) and `ll_<fingerprint>_sizes`, so objects of several programs link
//! together. The header's helpers are `static inline` and named after the program (`loglinear_mamba2_forward_run`),
//! so a host's source does not change when the fingerprint does.

use std::fmt::Write as _;

use loglinear::kernel::analysis::needs_zeroing;
use loglinear::kernel::kernel::{BufKind, Dim, Program, Sym};
use loglinear::kernel::SizeEnv;
use loglinear::RuntimeError;
use loglinear_cranelift::{compile_object, JitError, JitModule, JitOptions, ObjectCode};

use super::Emitted;

/// Which code generator makes the object.
#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq, Eq, Default)]
pub enum ObjectCodegen {
    /// Cranelift (every build; the `cranelift` backend's schedule)
    #[default]
    Cranelift,
    /// MLIR and LLVM's back end at -O3 (builds with the `mlir` feature; the `mlir-cpu` backend's schedule)
    Mlir,
}

/// The backend whose schedule the object follows.
pub(crate) fn backend(codegen: ObjectCodegen) -> &'static str {
    match codegen {
        ObjectCodegen::Cranelift => "cranelift",
        ObjectCodegen::Mlir => "mlir-cpu",
    }
}

/// Whether this machine and build can emit an object file with `codegen`: an x86-64 host (and MLIR for `mlir`).
pub(crate) fn check(codegen: ObjectCodegen) -> Result<(), RuntimeError> {
    if codegen == ObjectCodegen::Mlir && !loglinear::HAS_MLIR {
        return Err(RuntimeError::Unsupported {
            backend: backend(codegen).into(),
            what: "object files through MLIR in this build: rebuild the CLI with `--features mlir` (MLIR/LLVM 22)"
                .into(),
        });
    }
    check_host()
}

/// Whether this host is one the object targets serve (x86-64).
fn check_host() -> Result<(), RuntimeError> {
    const BACKEND: &str = "cranelift";
    let info = JitModule::new()
        .map_err(|e| RuntimeError::Unsupported { backend: BACKEND.into(), what: format!("this CPU: {e}") })?
        .isa_info()
        .clone();
    if !info.triple.starts_with("x86_64") {
        return Err(RuntimeError::Unsupported {
            backend: BACKEND.into(),
            what: format!("emitting object files for {} (x86-64 SysV only)", info.triple),
        });
    }
    Ok(())
}

/// `<name>.o` and `<name>.h`, and each kernel's entry point, scratch and grid.
pub(crate) fn emit(p: &Program, name: &str, codegen: ObjectCodegen) -> Result<Emitted, RuntimeError> {
    check(codegen)?;
    let prefix = format!("ll_{name}");
    let code = match codegen {
        ObjectCodegen::Cranelift => compile_object(p, &prefix, &JitOptions::default()).map_err(|e| match e {
            JitError::Unsupported { .. } => {
                RuntimeError::Unsupported { backend: backend(codegen).into(), what: e.to_string() }
            }
            e => RuntimeError::Backend { backend: "emit".into(), message: e.to_string() },
        })?,
        ObjectCodegen::Mlir => loglinear::mlir_object(p, &prefix)
            .ok_or_else(|| RuntimeError::Internal("no MLIR in this build".into()))?
            .map_err(|message| RuntimeError::Backend { backend: "emit".into(), message })?,
    };
    let kernels = p
        .kernels
        .iter()
        .zip(&code.kernels)
        .map(|(k, o)| {
            let grid: Vec<String> = k.grid.iter().map(|g| k.vars[g.0 as usize].extent.to_string()).collect();
            serde_json::json!({
                "entry": o.symbol,
                "scratch_floats": o.scratch_floats,
                "grid": grid,
                "code_bytes": o.code_size,
            })
        })
        .collect();
    let header = header(p, name, &code);
    let mut fields = serde_json::Map::new();
    fields.insert("arch".into(), code.triple.clone().into());
    fields.insert("cpu_features".into(), code.cpu_features.clone().into());
    fields.insert("codegen".into(), code.generator.into());
    fields.insert("imports".into(), code.imports.clone().into());
    Ok(Emitted {
        files: vec![(format!("{name}.o"), code.bytes), (format!("{name}.h"), header.into_bytes())],
        kernels,
        fields,
    })
}

/// Target-wide manifest fields.
pub(crate) fn manifest_fields() -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert(
        "parameters".into(),
        "per kernel (symbol `entry` in <fingerprint>.o, also declared in <fingerprint>.h): void entry(float *const \
         *bufs, const int64_t *sizes, int64_t lo, int64_t hi, float *scratch): grid programs lo..hi (the grid's \
         extents multiplied, last grid variable fastest), bufs one float* per buffer in program order (every buffer \
         f32, row-major), sizes the 12 values named by `sizes`, scratch at least scratch_floats floats per calling \
         thread; ll_<fingerprint>_sizes(int64_t *sizes, int64_t B, int64_t T, int64_t H, int64_t L, int64_t step) \
         fills sizes"
            .into(),
    );
    m
}

/// The C name of a size slot.
fn slot(s: Sym) -> &'static str {
    match s {
        Sym::B => "LL_B",
        Sym::T => "LL_T",
        Sym::H => "LL_H",
        Sym::K => "LL_K",
        Sym::V => "LL_V",
        Sym::L => "LL_L",
        Sym::NT => "LL_NT",
        Sym::C => "LL_C",
        Sym::M => "LL_M",
        Sym::MS => "LL_MS",
        Sym::LC => "LL_LC",
        Sym::Step => "LL_STEP",
    }
}

/// A product of extents as a C expression over `sizes`.
fn c_product(dims: &[Dim]) -> String {
    if dims.is_empty() {
        return "(int64_t)1".into();
    }
    dims.iter()
        .map(|d| match d {
            Dim::Lit(n) => format!("(int64_t){n}"),
            Dim::Sym(s) => format!("sizes[{}]", slot(*s)),
        })
        .collect::<Vec<_>>()
        .join(" * ")
}

/// `text` with every character that may not appear in a C identifier replaced by `_`.
fn ident(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

fn shape_text(dims: &[Dim]) -> String {
    format!("[{}]", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
}

/// The C header of program `p` compiled into `code` (file `<name>.o`).
fn header(p: &Program, name: &str, code: &ObjectCode) -> String {
    let pre = ident(&p.name);
    let up = pre.to_uppercase();
    let guard = format!("LL_{}_H", name.to_uppercase());
    let spec = p.specialised.expect("emitted programs are specialised");
    let zero = needs_zeroing(p);
    let features: Vec<String> = code.cpu_features.iter().map(|f| f.to_uppercase()).collect();
    let imports = if code.imports.is_empty() { "none".to_string() } else { code.imports.join(", ") };
    let mut h = String::new();
    let w = &mut h;
    let _ = writeln!(
        w,
        "/* {prog}: {n} kernel{s} compiled ahead of time by loglinear {ver}\n \
         * (`loglinear emit --target object`, code by {generator}).\n \
         *\n \
         * Code: {name}.o, position-independent machine code for {triple}\n \
         * with {feat} (the CPU it was emitted on). Link it into a program\n \
         * (`cc prog.c {name}.o -lm`) or a shared library (`cc -shared -o lib.so {name}.o -lm`).\n \
         * Symbols it imports: {imports}. Kernel IR: {name}.kir.\n \
         * Compiled sizes: K={k} V={v} C={c}; {kind}.\n \
         * Every buffer is float (f32, row-major): the caller converts f16/bf16 data to f32 and back.\n \
         */",
        prog = p.name,
        n = p.kernels.len(),
        s = if p.kernels.len() == 1 { "" } else { "s" },
        ver = env!("CARGO_PKG_VERSION"),
        triple = code.triple,
        generator = code.generator,
        feat = if features.is_empty() { "baseline features".to_string() } else { features.join(", ") },
        k = spec.k,
        v = spec.v,
        c = spec.c,
        kind = if p.hierarchical { "log-linear (M, MS, LC from T and L)" } else { "linear (M = MS = LC = 1)" },
    );
    let _ = writeln!(w, "#ifndef {guard}\n#define {guard}\n");
    let _ = writeln!(w, "#include <stdint.h>\n#include <stdlib.h>");
    let _ = writeln!(w, "#if defined(__x86_64__) || defined(_M_X64)\n#include <xmmintrin.h>\n#endif\n");
    let _ = writeln!(w, "#ifdef __cplusplus\nextern \"C\" {{\n#endif\n");
    let _ = writeln!(
        w,
        "#ifndef LOGLINEAR_SIZE_SLOTS\n#define LOGLINEAR_SIZE_SLOTS\n\
         /* Slots of the run-time sizes every kernel reads (int64_t sizes[LL_NUM_SIZES]). */\n\
         enum {{ {}, LL_NUM_SIZES }};\n#endif\n",
        SizeEnv::ORDER.iter().map(|s| slot(*s)).collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(
        w,
        "/* Kernel entry points, run in this order: grid programs lo..hi (last grid variable fastest), bufs one\n \
         * float* per buffer (the order below), scratch at least the kernel's scratch floats, private to the\n \
         * calling thread. Grid programs of one kernel write disjoint elements: threads may share a kernel's\n \
         * range; every kernel must finish before the next starts. */"
    );
    for (k, o) in p.kernels.iter().zip(&code.kernels) {
        let grid: Vec<Dim> = k.grid.iter().map(|g| k.vars[g.0 as usize].extent).collect();
        let _ = writeln!(
            w,
            "/* grid {}, scratch {} floats */\n\
             void {}(float *const *bufs, const int64_t *sizes, int64_t lo, int64_t hi, float *scratch);",
            shape_text(&grid),
            o.scratch_floats,
            o.symbol,
        );
    }
    let _ = writeln!(
        w,
        "/* Fills sizes for B sequences of T tokens, H heads, L levels of lambda (1 when the variant has none) and\n \
         * the decode position step (0 for a forward run); K, V, C are the compiled ones, NT = ceil(T / C),\n \
         * M = bitlen(NT - 1), MS = M + 1, LC = L for a log-linear program (else 1). */\n\
         void {}(int64_t *sizes, int64_t B, int64_t T, int64_t H, int64_t L, int64_t step);\n",
        code.sizes_symbol
    );
    // Buffer constants, with unique names.
    let mut names: Vec<String> = Vec::new();
    for (bi, b) in p.buffers.iter().enumerate() {
        let mut n = format!("{up}_{}", ident(&b.name).to_uppercase());
        if names.contains(&n) {
            n = format!("{n}_{bi}");
        }
        names.push(n);
    }
    let _ = writeln!(w, "/* Buffers, in the order of `bufs` (shapes over the sizes; every one float). */\nenum {{");
    for (bi, b) in p.buffers.iter().enumerate() {
        let kind = match &b.kind {
            BufKind::Input(n) => format!("input {n}"),
            BufKind::Output => "output".into(),
            BufKind::Scratch => "scratch".into(),
            BufKind::State => "state".into(),
        };
        let _ = writeln!(w, "    {} = {bi}, /* {kind} {} */", names[bi], shape_text(&b.shape));
    }
    let _ = writeln!(w, "    {up}_NUM_BUFFERS = {}\n}};\n", p.buffers.len());
    let _ = writeln!(
        w,
        "/* The output buffer. */\n#define {up}_OUTPUT {}\n",
        names.get(p.output.0 as usize).map_or("-1", |s| s.as_str())
    );
    let _ = writeln!(
        w,
        "static inline void {pre}_sizes(int64_t *sizes, int64_t B, int64_t T, int64_t H, int64_t L, int64_t step)\n\
         {{\n    {}(sizes, B, T, H, L, step);\n}}\n",
        code.sizes_symbol
    );
    let _ = writeln!(w, "/* Elements of buffer i for these sizes; -1 for no such buffer. */");
    let _ = writeln!(w, "static inline int64_t {pre}_buffer_len(int i, const int64_t *sizes)\n{{\n    switch (i) {{");
    for (bi, b) in p.buffers.iter().enumerate() {
        let _ = writeln!(w, "    case {}: return {};", names[bi], c_product(&b.shape));
    }
    let _ = writeln!(w, "    default: return -1;\n    }}\n}}\n");
    let _ = writeln!(w, "/* Name of buffer i (an input's name is the tensor it holds: q, k, v, ...). */");
    let _ = writeln!(w, "static inline const char *{pre}_buffer_name(int i)\n{{\n    switch (i) {{");
    for (bi, b) in p.buffers.iter().enumerate() {
        let _ = writeln!(w, "    case {}: return \"{}\";", names[bi], b.name);
    }
    let _ = writeln!(w, "    default: return 0;\n    }}\n}}\n");
    let _ = writeln!(w, "/* Kind of buffer i: \"input\", \"output\", \"scratch\" or \"state\". */");
    let _ = writeln!(w, "static inline const char *{pre}_buffer_kind(int i)\n{{\n    switch (i) {{");
    for (bi, b) in p.buffers.iter().enumerate() {
        let kind = match &b.kind {
            BufKind::Input(_) => "input",
            BufKind::Output => "output",
            BufKind::Scratch => "scratch",
            BufKind::State => "state",
        };
        let _ = writeln!(w, "    case {}: return \"{kind}\";", names[bi]);
    }
    let _ = writeln!(w, "    default: return 0;\n    }}\n}}\n");
    let _ = writeln!(
        w,
        "/* Whether buffer i must be zero before a run (a calloc'd buffer is): the output and scratch buffers some\n \
         * kernel reads before it has written all of them, and every state, which holds the state to start from\n \
         * (zeros at position 0; a decode step reads and updates it in place). Inputs hold the inputs. */"
    );
    let _ = writeln!(w, "static inline int {pre}_must_zero(int i)\n{{\n    switch (i) {{");
    for (bi, b) in p.buffers.iter().enumerate() {
        let z = match b.kind {
            BufKind::Input(_) => false,
            BufKind::State => true,
            BufKind::Output | BufKind::Scratch => zero[bi],
        };
        let _ = writeln!(w, "    case {}: return {};", names[bi], u8::from(z));
    }
    let _ = writeln!(w, "    default: return 0;\n    }}\n}}\n");
    let _ = writeln!(
        w,
        "/* Allocates every buffer zeroed for these sizes into bufs[{up}_NUM_BUFFERS]:\n \
         * 0, or -1 (nothing allocated). */\n\
         static inline int {pre}_alloc(float **bufs, const int64_t *sizes)\n{{\n    \
             int i, j;\n    \
             for (i = 0; i < {up}_NUM_BUFFERS; i++) {{\n        \
                 int64_t n = {pre}_buffer_len(i, sizes);\n        \
                 bufs[i] = (float *)calloc((size_t)(n > 0 ? n : 1), sizeof(float));\n        \
                 if (!bufs[i]) {{\n            \
                     for (j = 0; j < i; j++) {{\n                \
                         free(bufs[j]);\n                \
                         bufs[j] = 0;\n            \
                     }}\n            \
                     return -1;\n        \
                 }}\n    \
             }}\n    \
             return 0;\n}}\n"
    );
    let _ = writeln!(
        w,
        "/* Frees what {pre}_alloc allocated. */\n\
         static inline void {pre}_free(float **bufs)\n{{\n    \
             int i;\n    \
             for (i = 0; i < {up}_NUM_BUFFERS; i++) {{\n        \
                 free(bufs[i]);\n        \
                 bufs[i] = 0;\n    \
             }}\n}}\n"
    );
    let max_scratch = code.kernels.iter().map(|k| k.scratch_floats).max().unwrap_or(0) + 4;
    let _ = writeln!(
        w,
        "/* Runs every kernel in order over all its grid programs on this thread, subnormal floats flushed to zero\n \
         * while it runs (as loglinear's own runs). Before: the inputs in their buffers, the states to start\n \
         * from, the output and scratch buffers zero where {pre}_must_zero says.\n \
         * After: the output and the states hold the results. Returns 0, or -1 when the scratch cannot be\n \
         * allocated. */\n\
         static inline int {pre}_run(float *const *bufs, const int64_t *sizes)\n{{\n    \
             int64_t n;\n    \
             float *scratch = (float *)calloc({max_scratch}, sizeof(float));"
    );
    let _ = writeln!(
        w,
        "#if defined(__x86_64__) || defined(_M_X64)\n    unsigned int csr = _mm_getcsr();\n#endif\n    \
         if (!scratch)\n        return -1;\n\
         #if defined(__x86_64__) || defined(_M_X64)\n    _mm_setcsr(csr | 0x8040u); /* FTZ and DAZ */\n#endif"
    );
    for (k, o) in p.kernels.iter().zip(&code.kernels) {
        let grid: Vec<Dim> = k.grid.iter().map(|g| k.vars[g.0 as usize].extent).collect();
        let _ = writeln!(
            w,
            "    n = {};\n    if (n > 0)\n        {}(bufs, sizes, 0, n, scratch);",
            c_product(&grid),
            o.symbol
        );
    }
    let _ = writeln!(
        w,
        "#if defined(__x86_64__) || defined(_M_X64)\n    _mm_setcsr(csr);\n#endif\n    free(scratch);\n    return 0;\n}}\n"
    );
    threaded_run(w, p, code, &pre, max_scratch);
    let _ = writeln!(w, "#ifdef __cplusplus\n}}\n#endif\n\n#endif /* {guard} */");
    h
}

/// `<pre>_run_threads(bufs, sizes, nthreads)`, compiled when the host defines `LOGLINEAR_THREADS` (POSIX threads;
/// link with `-pthread`): each kernel's grid programs split into `nthreads` contiguous ranges run at once (the
/// programs of one kernel write disjoint regions: kernel-IR invariant 4), kernels one after another.
fn threaded_run(w: &mut String, p: &Program, code: &ObjectCode, pre: &str, max_scratch: usize) {
    let _ = writeln!(
        w,
        "#ifdef LOGLINEAR_THREADS\n\
         #include <pthread.h>\n\n\
         /* One thread's share of a kernel's grid (internal to {pre}_run_threads). */\n\
         struct {pre}_job {{\n    \
             void (*entry)(float *const *, const int64_t *, int64_t, int64_t, float *);\n    \
             float *const *bufs;\n    \
             const int64_t *sizes;\n    \
             int64_t lo, hi;\n    \
             float *scratch;\n\
         }};\n\n\
         static inline void *{pre}_worker(void *arg)\n{{\n    \
             struct {pre}_job *j = (struct {pre}_job *)arg;\n\
         #if defined(__x86_64__) || defined(_M_X64)\n    \
             unsigned int csr = _mm_getcsr();\n    \
             _mm_setcsr(csr | 0x8040u);\n\
         #endif\n    \
             j->entry(j->bufs, j->sizes, j->lo, j->hi, j->scratch);\n\
         #if defined(__x86_64__) || defined(_M_X64)\n    \
             _mm_setcsr(csr);\n\
         #endif\n    \
             return 0;\n\
         }}\n\n\
         /* As {pre}_run, with each kernel's grid programs shared among nthreads POSIX threads (contiguous\n \
          * ranges; the kernels one after another). Define LOGLINEAR_THREADS before including this header and\n \
          * link with -pthread. Returns 0, or -1 when memory cannot be had (a thread that cannot be started\n \
          * runs its range on the calling thread). */\n\
         static inline int {pre}_run_threads(float *const *bufs, const int64_t *sizes, int nthreads)\n{{\n    \
             int64_t n, per;\n    \
             int t, used;\n    \
             pthread_t *tid;\n    \
             int *started;\n    \
             struct {pre}_job *jobs;\n    \
             float *scratch;\n    \
             if (nthreads < 1)\n        \
                 nthreads = 1;\n    \
             tid = (pthread_t *)calloc((size_t)nthreads, sizeof(pthread_t));\n    \
             started = (int *)calloc((size_t)nthreads, sizeof(int));\n    \
             jobs = (struct {pre}_job *)calloc((size_t)nthreads, sizeof(struct {pre}_job));\n    \
             scratch = (float *)calloc((size_t)nthreads * {max_scratch}, sizeof(float));\n    \
             if (!tid || !started || !jobs || !scratch) {{\n        \
                 free(tid);\n        \
                 free(started);\n        \
                 free(jobs);\n        \
                 free(scratch);\n        \
                 return -1;\n    \
             }}"
    );
    for (k, o) in p.kernels.iter().zip(&code.kernels) {
        let grid: Vec<Dim> = k.grid.iter().map(|g| k.vars[g.0 as usize].extent).collect();
        let _ = writeln!(
            w,
            "    n = {n};\n    \
                 per = (n + nthreads - 1) / nthreads;\n    \
                 used = 0;\n    \
                 for (t = 0; t < nthreads && (int64_t)t * per < n; t++) {{\n        \
                     struct {pre}_job job;\n        \
                     job.entry = {sym};\n        \
                     job.bufs = bufs;\n        \
                     job.sizes = sizes;\n        \
                     job.lo = (int64_t)t * per;\n        \
                     job.hi = job.lo + per < n ? job.lo + per : n;\n        \
                     job.scratch = scratch + (size_t)t * {max_scratch};\n        \
                     jobs[t] = job;\n        \
                     started[t] = pthread_create(&tid[t], 0, {pre}_worker, &jobs[t]) == 0;\n        \
                     if (!started[t])\n            \
                         {pre}_worker(&jobs[t]);\n        \
                     used = t + 1;\n    \
                 }}\n    \
                 for (t = 0; t < used; t++)\n        \
                     if (started[t])\n            \
                         pthread_join(tid[t], 0);",
            n = c_product(&grid),
            sym = o.symbol,
        );
    }
    let _ = writeln!(
        w,
        "    free(tid);\n    free(started);\n    free(jobs);\n    free(scratch);\n    return 0;\n}}\n#endif /* LOGLINEAR_THREADS */\n"
    );
}
