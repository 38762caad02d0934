//! The emitted shaders from a host that knows nothing of loglinear's Rust code: a small wgpu program that reads
//! only `manifest.json` and the shader files, binds and dispatches every kernel as the manifest says, on the
//! machine's Vulkan adapter (lavapipe in CI), and gets the oracle's `o`. Also: every shader target emits a file
//! per kernel in its language.

use std::collections::BTreeMap;
use std::path::Path;

use loglinear::Registry;
use loglinear_cli::{main_with_args, EXIT_OK};
use serde_json::Value;

fn emit(args: &[&str]) -> i32 {
    let argv = ["loglinear", "emit"].iter().chain(args).map(|s| s.to_string()).collect::<Vec<_>>();
    main_with_args(Registry::builtin(), loglinear::backends(), argv)
}

const SHAPE: (usize, usize, usize, usize, usize) = (1, 37, 2, 8, 4);
const CHUNK: usize = 8;

#[test]
fn every_shader_target_writes_one_file_per_kernel() {
    for (target, check) in [
        ("wgsl", &(|b: &[u8]| String::from_utf8_lossy(b).contains("@compute")) as &dyn Fn(&[u8]) -> bool),
        ("spirv", &|b: &[u8]| b.len() % 4 == 0 && b[..4] == 0x0723_0203u32.to_le_bytes()),
        ("msl", &|b: &[u8]| String::from_utf8_lossy(b).contains("kernel void")),
        ("hlsl", &|b: &[u8]| String::from_utf8_lossy(b).contains("[numthreads(")),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let args = ["--variant", "loglinear_gated_deltanet", "--target", target, "--out", d, "--shape", "1,37,2,8,4"];
        assert_eq!(emit(&args), EXIT_OK, "{target}");
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("manifest.json")).unwrap()).unwrap();
        assert_eq!(m["target"], target);
        for p in m["programs"].as_array().unwrap() {
            let kernels = p["kernels"].as_array().unwrap();
            assert!(!kernels.is_empty());
            for k in kernels {
                let bytes = std::fs::read(dir.path().join(k["file"].as_str().unwrap())).unwrap();
                assert!(check(&bytes), "{target}: {}", k["file"]);
                assert!(!k["bindings"].as_array().unwrap().is_empty());
            }
        }
    }
}

/// The value of a manifest dimension (`B`, `NT`, `64`, …) for these sizes.
fn dim(d: &str, sizes: &BTreeMap<&str, i64>) -> i64 {
    d.parse::<i64>().unwrap_or_else(|_| *sizes.get(d).unwrap_or_else(|| panic!("unknown dimension `{d}`")))
}

fn bitlen(x: i64) -> i64 {
    64 - (x as u64).leading_zeros() as i64
}

/// Runs the forward program of the manifest in `dir` on `inputs` (f32, by name); returns the output.
fn run_manifest(dir: &Path, inputs: &BTreeMap<String, (Vec<usize>, Vec<f32>)>) -> Option<Vec<f32>> {
    let m: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let p = &m["programs"][0];
    assert_eq!(p["role"], "forward");
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let Ok(adapter) = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default())) else {
        // The CI installs lavapipe: there a missing adapter is a failure.
        assert!(
            std::env::var_os("LOGLINEAR_REQUIRE_GPU").is_none(),
            "LOGLINEAR_REQUIRE_GPU is set but there is no adapter"
        );
        eprintln!("skip: no Vulkan adapter");
        return None;
    };
    // The kernels bind more storage buffers than WebGPU's default 8 (the manifest says how many each needs).
    let need = p["kernels"].as_array().unwrap().iter().map(|k| k["storage_buffers"].as_u64().unwrap()).max().unwrap();
    let limits = adapter.limits();
    assert!(u64::from(limits.max_storage_buffers_per_shader_stage) >= need, "the adapter binds too few buffers");
    let desc = wgpu::DeviceDescriptor { required_limits: limits, ..Default::default() };
    let (device, queue) = pollster::block_on(adapter.request_device(&desc)).unwrap();
    // Sizes: B, T, H, K, V from q [B, T, H, K] and v [B, T, H, V]; L from the λ tensor; the rest derived.
    let q = &inputs["q"].0;
    let (b, t, h, k) = (q[0] as i64, q[1] as i64, q[2] as i64, q[3] as i64);
    let v = inputs["v"].0[3] as i64;
    let log_linear = p["log_linear"].as_bool().unwrap();
    let l = inputs.iter().find(|(n, _)| n.starts_with("lam")).map_or(1, |(_, t)| *t.0.last().unwrap() as i64);
    let c = p["chunk"].as_i64().unwrap();
    let nt = (t + c - 1) / c;
    let mm = if log_linear { bitlen(nt - 1) } else { 1 };
    let order = ["B", "T", "H", "K", "V", "L", "NT", "C", "M", "MS", "LC", "Step"];
    let values = [b, t, h, k, v, l, nt, c, mm, if log_linear { mm + 1 } else { 1 }, if log_linear { l } else { 1 }, 0];
    let sizes: BTreeMap<&str, i64> = order.iter().copied().zip(values).collect();
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let make = |bytes: u64| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes.max(4),
            usage,
            mapped_at_creation: false,
        })
    };
    let sizes_buf = make(48);
    queue.write_buffer(&sizes_buf, 0, &values.iter().flat_map(|x| (*x as i32).to_le_bytes()).collect::<Vec<u8>>());
    let mut buffers = BTreeMap::new();
    let mut output = None;
    for buf in p["buffers"].as_array().unwrap() {
        let name = buf["name"].as_str().unwrap().to_string();
        assert_eq!(buf["dtype"], "f32", "f32 storage");
        let n: i64 = buf["shape"].as_array().unwrap().iter().map(|d| dim(d.as_str().unwrap(), &sizes)).product();
        let gpu = make(n as u64 * 4);
        let kind = buf["kind"].as_str().unwrap();
        if let Some(input) = kind.strip_prefix("input ") {
            let data: Vec<u8> = inputs[input].1.iter().flat_map(|x| x.to_le_bytes()).collect();
            queue.write_buffer(&gpu, 0, &data);
        }
        if kind == "output" {
            output = Some((name.clone(), n as usize));
        }
        buffers.insert(name, gpu);
    }
    let mut spills = Vec::new();
    for kernel in p["kernels"].as_array().unwrap() {
        let source = std::fs::read_to_string(dir.join(kernel["file"].as_str().unwrap())).unwrap();
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: None,
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let programs: i64 =
            kernel["grid"].as_array().unwrap().iter().map(|d| dim(d.as_str().unwrap(), &sizes)).product();
        let bindings = kernel["bindings"].as_array().unwrap();
        let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
            .iter()
            .map(|bd| wgpu::BindGroupLayoutEntry {
                binding: bd["binding"].as_u64().unwrap() as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: !bd["writable"].as_bool().unwrap() },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: None, entries: &entries });
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: None,
            bind_group_layouts: &[Some(&bgl)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: None,
            layout: Some(&layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let spill = make(kernel["spill_floats_per_workgroup"].as_u64().unwrap() * programs as u64 * 4);
        let group_entries: Vec<wgpu::BindGroupEntry> = bindings
            .iter()
            .map(|bd| {
                let role = bd["role"].as_str().unwrap();
                let buffer = match role {
                    "sizes" => &sizes_buf,
                    "spill" => &spill,
                    _ => &buffers[role.strip_prefix("buffer ").unwrap()],
                };
                wgpu::BindGroupEntry {
                    binding: bd["binding"].as_u64().unwrap() as u32,
                    resource: buffer.as_entire_binding(),
                }
            })
            .collect();
        let group =
            device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &bgl, entries: &group_entries });
        let mut enc = device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &group, &[]);
            let x = programs.clamp(1, 65535) as u32;
            let y = (programs as u64).div_ceil(x as u64) as u32;
            if programs > 0 {
                pass.dispatch_workgroups(x, y, 1);
            }
        }
        queue.submit([enc.finish()]);
        spills.push(spill);
    }
    let (name, n) = output.expect("an output buffer");
    let read = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: (n * 4) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(&buffers[&name], 0, &read, 0, (n * 4) as u64);
    queue.submit([enc.finish()]);
    read.slice(..).map_async(wgpu::MapMode::Read, |r| r.unwrap());
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let bytes = read.slice(..).get_mapped_range().unwrap().to_vec();
    Some(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[test]
fn a_wgpu_host_runs_the_emitted_wgsl_from_the_manifest_alone() {
    std::env::set_var("XDG_RUNTIME_DIR", std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into()));
    let reg = Registry::builtin();
    for variant in ["loglinear_mamba2", "loglinear_gated_deltanet"] {
        let v = reg.get(variant).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let (b, t, h, k, vd) = SHAPE;
        let shape = format!("{b},{t},{h},{k},{vd}");
        let chunk = CHUNK.to_string();
        let args = ["--variant", variant, "--target", "wgsl", "--out", d, "--shape", &shape, "--chunk-size", &chunk];
        assert_eq!(emit(&args), EXIT_OK);
        let x = loglinear::random::random_inputs(v, SHAPE, 0, 11);
        let inputs: BTreeMap<String, (Vec<usize>, Vec<f32>)> =
            x.iter().map(|(n, t)| (n.clone(), (t.shape.clone(), t.data.iter().map(|e| *e as f32).collect()))).collect();
        let Some(got) = run_manifest(dir.path(), &inputs) else { return };
        let want = loglinear::run(v, "reference", &x, Some(CHUNK)).unwrap();
        assert_eq!(got.len(), want.data.len());
        let scale = want.data.iter().fold(1e-30f64, |m, e| m.max(e.abs()));
        let err = got.iter().zip(&want.data).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max) / scale;
        assert!(err <= 1e-4, "{variant}: the manifest-driven host differs from the oracle by {err:e}");
    }
}
