//! Generated WGSL in the other shading languages, through naga's back ends: SPIR-V (Vulkan, OpenCL-free
//! runtimes), MSL (Metal) and HLSL (DirectX 12, shader model 5.1+). The pipeline-overridable `wave_base` is fixed at
//! 0 in these outputs (one dispatch per kernel: grids up to 65,535 workgroups along x and y).

use crate::WAVE_BASE;

/// A shading language [`cross_compile`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShaderLang {
    /// SPIR-V 1.x words (little-endian bytes).
    Spirv,
    /// Metal Shading Language source.
    Msl,
    /// HLSL source (shader model 5.1).
    Hlsl,
}

impl ShaderLang {
    /// The file extension of its output.
    pub fn extension(self) -> &'static str {
        match self {
            ShaderLang::Spirv => "spv",
            ShaderLang::Msl => "metal",
            ShaderLang::Hlsl => "hlsl",
        }
    }
}

/// `source` (WGSL with one compute entry point `main`, as this crate generates it) in `lang`: bytes of the
/// output file.
///
/// # Errors
/// naga's message when the WGSL does not parse or validate or the back end refuses it.
pub fn cross_compile(source: &str, lang: ShaderLang) -> Result<Vec<u8>, String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    let mut v = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all());
    let info = v.validate(&module).map_err(|e| e.emit_to_string(source))?;
    let mut constants = naga::back::PipelineConstants::default();
    if module.overrides.iter().any(|(_, o)| o.name.as_deref() == Some(WAVE_BASE)) {
        constants.insert(WAVE_BASE.to_string(), 0.0);
    }
    let entry = Some((naga::ShaderStage::Compute, "main"));
    let (module, info) = naga::back::pipeline_constants::process_overrides(&module, &info, entry, &constants)
        .map_err(|e| format!("pipeline constants: {e}"))?;
    match lang {
        ShaderLang::Spirv => {
            let words = naga::back::spv::write_vec(&module, &info, &naga::back::spv::Options::default(), None)
                .map_err(|e| format!("SPIR-V: {e}"))?;
            Ok(words.iter().flat_map(|w| w.to_le_bytes()).collect())
        }
        ShaderLang::Msl => {
            let options = naga::back::msl::Options { fake_missing_bindings: true, ..Default::default() };
            let pipeline = naga::back::msl::PipelineOptions::default();
            naga::back::msl::write_string(&module, &info, &options, &pipeline)
                .map(|(s, _)| s.into_bytes())
                .map_err(|e| format!("MSL: {e}"))
        }
        ShaderLang::Hlsl => {
            let options = naga::back::hlsl::Options::default();
            let pipeline = naga::back::hlsl::PipelineOptions::default();
            let mut out = String::new();
            naga::back::hlsl::Writer::new(&mut out, &options, &pipeline)
                .write(&module, &info, None)
                .map_err(|e| format!("HLSL: {e}"))?;
            Ok(out.into_bytes())
        }
    }
}
