// kernel `chunk` of `loglinear_gated_deltanet.forward` (loglinear-wgsl)
@group(0) @binding(0) var<storage, read> sizes: array<i32, 12>;
override wave_base: i32 = 0;
// buffer `q` f32 ["B", "T", "H", "16"]
@group(0) @binding(1) var<storage, read> b0: array<f32>;
// buffer `k` f32 ["B", "T", "H", "16"]
@group(0) @binding(2) var<storage, read> b1: array<f32>;
// buffer `v` f32 ["B", "T", "H", "8"]
@group(0) @binding(3) var<storage, read> b2: array<f32>;
// buffer `g` f32 ["B", "T", "H"]
@group(0) @binding(4) var<storage, read> b3: array<f32>;
// buffer `beta` f32 ["B", "T", "H"]
@group(0) @binding(5) var<storage, read> b4: array<f32>;
// buffer `lam` f32 ["B", "T", "H", "L"]
@group(0) @binding(6) var<storage, read> b5: array<f32>;
// buffer `o` f32 ["B", "T", "H", "8"]
@group(0) @binding(7) var<storage, read_write> b6: array<f32>;
// buffer `qt` f32 ["B", "T", "H", "16"]
@group(0) @binding(8) var<storage, read_write> b7: array<f32>;
// buffer `cw` f32 ["B", "H", "NT", "16", "8"]
@group(0) @binding(9) var<storage, read_write> b8: array<f32>;
// buffer `dec` f32 ["B", "H", "NT"]
@group(0) @binding(10) var<storage, read_write> b9: array<f32>;
// buffer `kt` f32 ["B", "T", "H", "16"]
@group(0) @binding(11) var<storage, read_write> b10: array<f32>;
// buffer `wt` f32 ["B", "T", "H", "16"]
@group(0) @binding(12) var<storage, read_write> b11: array<f32>;
var<workgroup> wg: array<f32, 3361>;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lidx: u32) {
    let li: i32 = i32(lidx);
    let wp: i32 = i32(wid.x + wid.y * nwg.x);
    var p: i32 = wp + wave_base;
    if (p >= sizes[0] * sizes[2] * sizes[6]) { return; }
    var v0: i32 = 0;
    var v1: i32 = 0;
    var v2: i32 = 0;
    var v3: i32 = 0;
    var v4: i32 = 0;
    var v5: i32 = 0;
    v2 = p % sizes[6];
    p = p / sizes[6];
    v1 = p % sizes[2];
    p = p / sizes[2];
    v0 = p % sizes[0];
    p = p / sizes[0];
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        let c0: i32 = v0;
        let c1: i32 = ((v2 * (16)) + r);
        let c2: i32 = v1;
        let c3: i32 = s;
        let o: i32 = (((c0) * sizes[1] + c1) * sizes[2] + c2) * 16 + c3;
        var x: f32 = 0.0;
        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 16) { x = b0[o]; }
        wg[545 + e] = x;
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        let c0: i32 = v0;
        let c1: i32 = ((v2 * (16)) + r);
        let c2: i32 = v1;
        let c3: i32 = s;
        let o: i32 = (((c0) * sizes[1] + c1) * sizes[2] + c2) * 16 + c3;
        var x: f32 = 0.0;
        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 16) { x = b1[o]; }
        wg[801 + e] = x;
    }
    workgroupBarrier();
    if (li < 128) {
        let i: i32 = 0;
        let e: i32 = li;
        let r: i32 = e / 8;
        let s: i32 = e % 8;
        let c0: i32 = v0;
        let c1: i32 = ((v2 * (16)) + r);
        let c2: i32 = v1;
        let c3: i32 = s;
        let o: i32 = (((c0) * sizes[1] + c1) * sizes[2] + c2) * 8 + c3;
        var x: f32 = 0.0;
        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 8) { x = b2[o]; }
        wg[33 + e] = x;
    }
    workgroupBarrier();
    if (li < 16) {
        let i: i32 = 0;
        let e: i32 = li;
        let r: i32 = e;
        let s: i32 = 0;
        let c0: i32 = v0;
        let c1: i32 = ((v2 * (16)) + r);
        let c2: i32 = v1;
        let o: i32 = ((c0) * sizes[1] + c1) * sizes[2] + c2;
        var x: f32 = 0.0;
        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2]) { x = b3[o]; }
        wg[1 + e] = x;
    }
    workgroupBarrier();
    if (li < 16) {
        let i: i32 = 0;
        let e: i32 = li;
        let r: i32 = e;
        let s: i32 = 0;
        let c0: i32 = v0;
        let c1: i32 = ((v2 * (16)) + r);
        let c2: i32 = v1;
        let o: i32 = ((c0) * sizes[1] + c1) * sizes[2] + c2;
        var x: f32 = 0.0;
        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2]) { x = b4[o]; }
        wg[17 + e] = x;
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 512; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 32;
        let s: i32 = e % 32;
        let c0: i32 = v0;
        let c1: i32 = ((v2 * (16)) + r);
        let c2: i32 = v1;
        let c3: i32 = ((0) + s);
        let o: i32 = (((c0) * sizes[1] + c1) * sizes[2] + c2) * sizes[5] + c3;
        var x: f32 = 0.0;
        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < sizes[5]) { x = b5[o]; }
        wg[2337 + e] = x;
    }
    workgroupBarrier();
    if (li < 128) {
        let i: i32 = 0;
        let e: i32 = li;
        let r: i32 = e / 8;
        let s: i32 = e % 8;
        wg[161 + e] = (wg[33 + r * 8 + s] * wg[17 + r]);
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[289 + e] = select(0.0, 1.0, (s <= r));
    }
    workgroupBarrier();
    if (li < 16) {
        let i: i32 = 0;
        let e: i32 = li;
        let r0: i32 = e * 1;
        let s0: i32 = 0;
        var a00: f32 = 0.0;
        for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
            {
                let q: i32 = q0 + 0;
                let x0: f32 = wg[289 + (r0 + 0) * 16 + q];
                let y0: f32 = wg[1 + q * 1 + s0 + 0];
                a00 = fma(x0, y0, a00);
            }
            {
                let q: i32 = q0 + 1;
                let x0: f32 = wg[289 + (r0 + 0) * 16 + q];
                let y0: f32 = wg[1 + q * 1 + s0 + 0];
                a00 = fma(x0, y0, a00);
            }
        }
        wg[33 + (r0 + 0) * 1 + s0 + 0] = a00;
    }
    workgroupBarrier();
    if (li < 16) {
        let i: i32 = 0;
        let e: i32 = li;
        let r: i32 = e;
        let s: i32 = 0;
        wg[49 + e] = select(0.0, wg[33 + r], (r == (15)));
    }
    workgroupBarrier();
    if (li < 1) {
        let i: i32 = 0;
        let o: i32 = li;
        var acc: f32 = 0.0;
        for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
            {
                let q: i32 = q0 + 0;
                acc = acc + wg[49 + q * 1 + o];
            }
            {
                let q: i32 = q0 + 1;
                acc = acc + wg[49 + q * 1 + o];
            }
        }
        wg[o] = acc;
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[1057 + e] = select(0.0, wg[1 + r], (s < r));
    }
    workgroupBarrier();
    if (li < 128) {
        let i: i32 = 0;
        let e: i32 = li;
        let r0: i32 = (e / 16) * 2;
        let s0: i32 = (e % 16) * 1;
        var a00: f32 = 0.0;
        var a10: f32 = 0.0;
        for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
            {
                let q: i32 = q0 + 0;
                let x0: f32 = wg[289 + (r0 + 0) * 16 + q];
                let x1: f32 = wg[289 + (r0 + 1) * 16 + q];
                let y0: f32 = wg[1057 + q * 16 + s0 + 0];
                a00 = fma(x0, y0, a00);
                a10 = fma(x1, y0, a10);
            }
            {
                let q: i32 = q0 + 1;
                let x0: f32 = wg[289 + (r0 + 0) * 16 + q];
                let x1: f32 = wg[289 + (r0 + 1) * 16 + q];
                let y0: f32 = wg[1057 + q * 16 + s0 + 0];
                a00 = fma(x0, y0, a00);
                a10 = fma(x1, y0, a10);
            }
        }
        wg[1313 + (r0 + 0) * 16 + s0 + 0] = a00;
        wg[1313 + (r0 + 1) * 16 + s0 + 0] = a10;
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[289 + e] = select(-3.4028235e38, wg[1313 + r * 16 + s], (s <= r));
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[1057 + e] = select(exp(min(wg[289 + r * 16 + s], 0.0)), 0.0, wg[289 + r * 16 + s] < -87.0);
    }
    workgroupBarrier();
    if (li < 128) {
        let i: i32 = 0;
        let e: i32 = li;
        let r0: i32 = (e / 16) * 2;
        let s0: i32 = (e % 16) * 1;
        var a00: f32 = 0.0;
        var a10: f32 = 0.0;
        for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
            {
                let q: i32 = q0 + 0;
                let x0: f32 = wg[801 + (r0 + 0) * 16 + q];
                let x1: f32 = wg[801 + (r0 + 1) * 16 + q];
                let y0: f32 = wg[801 + (s0 + 0) * 16 + q];
                a00 = fma(x0, y0, a00);
                a10 = fma(x1, y0, a10);
            }
            {
                let q: i32 = q0 + 1;
                let x0: f32 = wg[801 + (r0 + 0) * 16 + q];
                let x1: f32 = wg[801 + (r0 + 1) * 16 + q];
                let y0: f32 = wg[801 + (s0 + 0) * 16 + q];
                a00 = fma(x0, y0, a00);
                a10 = fma(x1, y0, a10);
            }
        }
        wg[289 + (r0 + 0) * 16 + s0 + 0] = a00;
        wg[289 + (r0 + 1) * 16 + s0 + 0] = a10;
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[1313 + e] = (wg[289 + r * 16 + s] * wg[17 + r]);
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[289 + e] = select(0.0, wg[1313 + r * 16 + s], (s < r));
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[1569 + e] = select(0.0, 1.0, (s == r));
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[1825 + e] = select(0.0, wg[289 + r * 16 + s], (s < r));
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[2081 + e] = 0.0;
    }
    workgroupBarrier();
    for (v3 = 0; v3 < 16; v3 = v3 + 1) {
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[289 + e] = select(0.0, wg[1825 + r * 16 + s], (r == v3));
        }
        workgroupBarrier();
        if (li < 16) {
            let i: i32 = 0;
            let o: i32 = li;
            var acc: f32 = 0.0;
            for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                {
                    let q: i32 = q0 + 0;
                    acc = acc + wg[289 + q * 16 + o];
                }
                {
                    let q: i32 = q0 + 1;
                    acc = acc + wg[289 + q * 16 + o];
                }
            }
            wg[49 + o] = acc;
        }
        workgroupBarrier();
        if (li < 16) {
            let i: i32 = 0;
            let e: i32 = li;
            let r0: i32 = (e / 16) * 1;
            let s0: i32 = (e % 16) * 1;
            var a00: f32 = 0.0;
            for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                {
                    let q: i32 = q0 + 0;
                    let x0: f32 = wg[49 + (r0 + 0) * 16 + q];
                    let y0: f32 = wg[2081 + q * 16 + s0 + 0];
                    a00 = fma(x0, y0, a00);
                }
                {
                    let q: i32 = q0 + 1;
                    let x0: f32 = wg[49 + (r0 + 0) * 16 + q];
                    let y0: f32 = wg[2081 + q * 16 + s0 + 0];
                    a00 = fma(x0, y0, a00);
                }
            }
            wg[65 + (r0 + 0) * 16 + s0 + 0] = a00;
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[289 + e] = select(0.0, wg[1569 + r * 16 + s], (r == v3));
        }
        workgroupBarrier();
        if (li < 16) {
            let i: i32 = 0;
            let o: i32 = li;
            var acc: f32 = 0.0;
            for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                {
                    let q: i32 = q0 + 0;
                    acc = acc + wg[289 + q * 16 + o];
                }
                {
                    let q: i32 = q0 + 1;
                    acc = acc + wg[289 + q * 16 + o];
                }
            }
            wg[49 + o] = acc;
        }
        workgroupBarrier();
        if (li < 16) {
            let i: i32 = 0;
            let e: i32 = li;
            let r: i32 = 0;
            let s: i32 = e;
            wg[49 + e] = (wg[49 + s] - wg[65 + s]);
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[289 + e] = select(0.0, wg[49 + s], (r == v3));
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[2081 + e] = (wg[2081 + r * 16 + s] + wg[289 + r * 16 + s]);
        }
        workgroupBarrier();
    }
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[289 + e] = (wg[1313 + r * 16 + s] * wg[1057 + r * 16 + s]);
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[1313 + e] = select(0.0, wg[289 + r * 16 + s], (s < r));
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[289 + e] = select(0.0, wg[1313 + r * 16 + s], (s < r));
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[1313 + e] = 0.0;
    }
    workgroupBarrier();
    for (v4 = 0; v4 < 16; v4 = v4 + 1) {
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[1825 + e] = select(0.0, wg[289 + r * 16 + s], (r == v4));
        }
        workgroupBarrier();
        if (li < 16) {
            let i: i32 = 0;
            let o: i32 = li;
            var acc: f32 = 0.0;
            for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                {
                    let q: i32 = q0 + 0;
                    acc = acc + wg[1825 + q * 16 + o];
                }
                {
                    let q: i32 = q0 + 1;
                    acc = acc + wg[1825 + q * 16 + o];
                }
            }
            wg[49 + o] = acc;
        }
        workgroupBarrier();
        if (li < 16) {
            let i: i32 = 0;
            let e: i32 = li;
            let r0: i32 = (e / 16) * 1;
            let s0: i32 = (e % 16) * 1;
            var a00: f32 = 0.0;
            for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                {
                    let q: i32 = q0 + 0;
                    let x0: f32 = wg[49 + (r0 + 0) * 16 + q];
                    let y0: f32 = wg[1313 + q * 16 + s0 + 0];
                    a00 = fma(x0, y0, a00);
                }
                {
                    let q: i32 = q0 + 1;
                    let x0: f32 = wg[49 + (r0 + 0) * 16 + q];
                    let y0: f32 = wg[1313 + q * 16 + s0 + 0];
                    a00 = fma(x0, y0, a00);
                }
            }
            wg[65 + (r0 + 0) * 16 + s0 + 0] = a00;
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[1825 + e] = select(0.0, wg[1569 + r * 16 + s], (r == v4));
        }
        workgroupBarrier();
        if (li < 16) {
            let i: i32 = 0;
            let o: i32 = li;
            var acc: f32 = 0.0;
            for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                {
                    let q: i32 = q0 + 0;
                    acc = acc + wg[1825 + q * 16 + o];
                }
                {
                    let q: i32 = q0 + 1;
                    acc = acc + wg[1825 + q * 16 + o];
                }
            }
            wg[49 + o] = acc;
        }
        workgroupBarrier();
        if (li < 16) {
            let i: i32 = 0;
            let e: i32 = li;
            let r: i32 = 0;
            let s: i32 = e;
            wg[49 + e] = (wg[49 + s] - wg[65 + s]);
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[1825 + e] = select(0.0, wg[49 + s], (r == v4));
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[1313 + e] = (wg[1313 + r * 16 + s] + wg[1825 + r * 16 + s]);
        }
        workgroupBarrier();
    }
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[289 + e] = (wg[801 + r * 16 + s] * wg[17 + r]);
    }
    workgroupBarrier();
    if (li < 128) {
        let i: i32 = 0;
        let e: i32 = li;
        let r0: i32 = (e / 16) * 2;
        let s0: i32 = (e % 16) * 1;
        var a00: f32 = 0.0;
        var a10: f32 = 0.0;
        for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
            {
                let q: i32 = q0 + 0;
                let x0: f32 = wg[2081 + (r0 + 0) * 16 + q];
                let x1: f32 = wg[2081 + (r0 + 1) * 16 + q];
                let y0: f32 = wg[289 + q * 16 + s0 + 0];
                a00 = fma(x0, y0, a00);
                a10 = fma(x1, y0, a10);
            }
            {
                let q: i32 = q0 + 1;
                let x0: f32 = wg[2081 + (r0 + 0) * 16 + q];
                let x1: f32 = wg[2081 + (r0 + 1) * 16 + q];
                let y0: f32 = wg[289 + q * 16 + s0 + 0];
                a00 = fma(x0, y0, a00);
                a10 = fma(x1, y0, a10);
            }
        }
        wg[1569 + (r0 + 0) * 16 + s0 + 0] = a00;
        wg[1569 + (r0 + 1) * 16 + s0 + 0] = a10;
    }
    workgroupBarrier();
    if (li < 128) {
        let i: i32 = 0;
        let e: i32 = li;
        let r0: i32 = (e / 8) * 1;
        let s0: i32 = (e % 8) * 1;
        var a00: f32 = 0.0;
        for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
            {
                let q: i32 = q0 + 0;
                let x0: f32 = wg[1313 + (r0 + 0) * 16 + q];
                let y0: f32 = wg[161 + q * 8 + s0 + 0];
                a00 = fma(x0, y0, a00);
            }
            {
                let q: i32 = q0 + 1;
                let x0: f32 = wg[1313 + (r0 + 0) * 16 + q];
                let y0: f32 = wg[161 + q * 8 + s0 + 0];
                a00 = fma(x0, y0, a00);
            }
        }
        wg[289 + (r0 + 0) * 8 + s0 + 0] = a00;
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[1313 + e] = 0.0;
    }
    workgroupBarrier();
    for (v5 = 0; v5 < 5; v5 = v5 + 1) {
        for (var e: i32 = li; e < 512; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 32;
            let s: i32 = e % 32;
            wg[2849 + e] = select(0.0, wg[2337 + r * 32 + s], (s == v5));
        }
        workgroupBarrier();
        if (li < 16) {
            let i: i32 = 0;
            let o: i32 = li;
            var acc: f32 = 0.0;
            for (var q0: i32 = 0; q0 < 32; q0 = q0 + 2) {
                {
                    let q: i32 = q0 + 0;
                    acc = acc + wg[2849 + o * 32 + q];
                }
                {
                    let q: i32 = q0 + 1;
                    acc = acc + wg[2849 + o * 32 + q];
                }
            }
            wg[17 + o] = acc;
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[1825 + e] = select(0.0, wg[17 + r], ((s <= r) && (32 - i32(countLeadingZeros(r ^ s)) == v5)));
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[1313 + e] = (wg[1313 + r * 16 + s] + wg[1825 + r * 16 + s]);
        }
        workgroupBarrier();
    }
    if (li < 128) {
        let i: i32 = 0;
        let e: i32 = li;
        let r0: i32 = (e / 16) * 2;
        let s0: i32 = (e % 16) * 1;
        var a00: f32 = 0.0;
        var a10: f32 = 0.0;
        for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
            {
                let q: i32 = q0 + 0;
                let x0: f32 = wg[545 + (r0 + 0) * 16 + q];
                let x1: f32 = wg[545 + (r0 + 1) * 16 + q];
                let y0: f32 = wg[801 + (s0 + 0) * 16 + q];
                a00 = fma(x0, y0, a00);
                a10 = fma(x1, y0, a10);
            }
            {
                let q: i32 = q0 + 1;
                let x0: f32 = wg[545 + (r0 + 0) * 16 + q];
                let x1: f32 = wg[545 + (r0 + 1) * 16 + q];
                let y0: f32 = wg[801 + (s0 + 0) * 16 + q];
                a00 = fma(x0, y0, a00);
                a10 = fma(x1, y0, a10);
            }
        }
        wg[1825 + (r0 + 0) * 16 + s0 + 0] = a00;
        wg[1825 + (r0 + 1) * 16 + s0 + 0] = a10;
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[2337 + e] = select(0.0, wg[1825 + r * 16 + s], (s <= r));
    }
    workgroupBarrier();
    if (li < 128) {
        let i: i32 = 0;
        let e: i32 = li;
        let r0: i32 = (e / 16) * 2;
        let s0: i32 = (e % 16) * 1;
        var a00: f32 = 0.0;
        var a10: f32 = 0.0;
        for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
            {
                let q: i32 = q0 + 0;
                let x0: f32 = wg[2337 + (r0 + 0) * 16 + q];
                let x1: f32 = wg[2337 + (r0 + 1) * 16 + q];
                let y0: f32 = wg[2081 + q * 16 + s0 + 0];
                a00 = fma(x0, y0, a00);
                a10 = fma(x1, y0, a10);
            }
            {
                let q: i32 = q0 + 1;
                let x0: f32 = wg[2337 + (r0 + 0) * 16 + q];
                let x1: f32 = wg[2337 + (r0 + 1) * 16 + q];
                let y0: f32 = wg[2081 + q * 16 + s0 + 0];
                a00 = fma(x0, y0, a00);
                a10 = fma(x1, y0, a10);
            }
        }
        wg[1825 + (r0 + 0) * 16 + s0 + 0] = a00;
        wg[1825 + (r0 + 1) * 16 + s0 + 0] = a10;
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[2081 + e] = (wg[1825 + r * 16 + s] * wg[1057 + r * 16 + s]);
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[1057 + e] = (wg[2081 + r * 16 + s] * wg[1313 + r * 16 + s]);
    }
    workgroupBarrier();
    if (li < 128) {
        let i: i32 = 0;
        let e: i32 = li;
        let r0: i32 = (e / 8) * 1;
        let s0: i32 = (e % 8) * 1;
        var a00: f32 = 0.0;
        for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
            {
                let q: i32 = q0 + 0;
                let x0: f32 = wg[1057 + (r0 + 0) * 16 + q];
                let y0: f32 = wg[161 + q * 8 + s0 + 0];
                a00 = fma(x0, y0, a00);
            }
            {
                let q: i32 = q0 + 1;
                let x0: f32 = wg[1057 + (r0 + 0) * 16 + q];
                let y0: f32 = wg[161 + q * 8 + s0 + 0];
                a00 = fma(x0, y0, a00);
            }
        }
        wg[417 + (r0 + 0) * 8 + s0 + 0] = a00;
    }
    workgroupBarrier();
    if (li < 128) {
        let i: i32 = 0;
        let e: i32 = li;
        let r0: i32 = (e / 16) * 2;
        let s0: i32 = (e % 16) * 1;
        var a00: f32 = 0.0;
        var a10: f32 = 0.0;
        for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
            {
                let q: i32 = q0 + 0;
                let x0: f32 = wg[2337 + (r0 + 0) * 16 + q];
                let x1: f32 = wg[2337 + (r0 + 1) * 16 + q];
                let y0: f32 = wg[1569 + q * 16 + s0 + 0];
                a00 = fma(x0, y0, a00);
                a10 = fma(x1, y0, a10);
            }
            {
                let q: i32 = q0 + 1;
                let x0: f32 = wg[2337 + (r0 + 0) * 16 + q];
                let x1: f32 = wg[2337 + (r0 + 1) * 16 + q];
                let y0: f32 = wg[1569 + q * 16 + s0 + 0];
                a00 = fma(x0, y0, a00);
                a10 = fma(x1, y0, a10);
            }
        }
        wg[1057 + (r0 + 0) * 16 + s0 + 0] = a00;
        wg[1057 + (r0 + 1) * 16 + s0 + 0] = a10;
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[1313 + e] = (wg[545 + r * 16 + s] - wg[1057 + r * 16 + s]);
    }
    workgroupBarrier();
    if (li < 16) {
        let i: i32 = 0;
        let e: i32 = li;
        let r: i32 = e;
        let s: i32 = 0;
        wg[17 + e] = select(exp(min(wg[33 + r], 0.0)), 0.0, wg[33 + r] < -87.0);
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[545 + e] = (wg[1313 + r * 16 + s] * wg[17 + r]);
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[1057 + e] = select(0.0, 1.0, (s < r));
    }
    workgroupBarrier();
    if (li < 16) {
        let i: i32 = 0;
        let e: i32 = li;
        let r0: i32 = e * 1;
        let s0: i32 = 0;
        var a00: f32 = 0.0;
        for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
            {
                let q: i32 = q0 + 0;
                let x0: f32 = wg[1057 + q * 16 + r0 + 0];
                let y0: f32 = wg[1 + q * 1 + s0 + 0];
                a00 = fma(x0, y0, a00);
            }
            {
                let q: i32 = q0 + 1;
                let x0: f32 = wg[1057 + q * 16 + r0 + 0];
                let y0: f32 = wg[1 + q * 1 + s0 + 0];
                a00 = fma(x0, y0, a00);
            }
        }
        wg[33 + (r0 + 0) * 1 + s0 + 0] = a00;
    }
    workgroupBarrier();
    if (li < 16) {
        let i: i32 = 0;
        let e: i32 = li;
        let r: i32 = e;
        let s: i32 = 0;
        wg[1 + e] = select(exp(min(wg[33 + r], 0.0)), 0.0, wg[33 + r] < -87.0);
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[1057 + e] = (wg[801 + r * 16 + s] * wg[1 + r]);
    }
    workgroupBarrier();
    if (li < 128) {
        let i: i32 = 0;
        let e: i32 = li;
        let r0: i32 = (e / 8) * 1;
        let s0: i32 = (e % 8) * 1;
        var a00: f32 = 0.0;
        for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
            {
                let q: i32 = q0 + 0;
                let x0: f32 = wg[1057 + q * 16 + r0 + 0];
                let y0: f32 = wg[289 + q * 8 + s0 + 0];
                a00 = fma(x0, y0, a00);
            }
            {
                let q: i32 = q0 + 1;
                let x0: f32 = wg[1057 + q * 16 + r0 + 0];
                let y0: f32 = wg[289 + q * 8 + s0 + 0];
                a00 = fma(x0, y0, a00);
            }
        }
        wg[33 + (r0 + 0) * 8 + s0 + 0] = a00;
    }
    workgroupBarrier();
    if (li < 1) {
        let i: i32 = 0;
        let e: i32 = li;
        let r: i32 = e;
        let s: i32 = 0;
        wg[1 + e] = select(exp(min(wg[0], 0.0)), 0.0, wg[0] < -87.0);
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        wg[161 + e] = (wg[1569 + r * 16 + s] * wg[17 + r]);
    }
    workgroupBarrier();
    if (li < 128) {
        let i: i32 = 0;
        let e: i32 = li;
        let r: i32 = e / 8;
        let s: i32 = e % 8;
        let c0: i32 = v0;
        let c1: i32 = ((v2 * (16)) + r);
        let c2: i32 = v1;
        let c3: i32 = s;
        let o: i32 = (((c0) * sizes[1] + c1) * sizes[2] + c2) * 8 + c3;
        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 8) { b6[o] = wg[417 + e]; }
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        let c0: i32 = v0;
        let c1: i32 = ((v2 * (16)) + r);
        let c2: i32 = v1;
        let c3: i32 = s;
        let o: i32 = (((c0) * sizes[1] + c1) * sizes[2] + c2) * 16 + c3;
        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 16) { b7[o] = wg[545 + e]; }
    }
    workgroupBarrier();
    if (li < 128) {
        let i: i32 = 0;
        let e: i32 = li;
        let r: i32 = e / 8;
        let s: i32 = e % 8;
        let c0: i32 = v0;
        let c1: i32 = v1;
        let c2: i32 = v2;
        let c3: i32 = r;
        let c4: i32 = s;
        let o: i32 = ((((c0) * sizes[2] + c1) * sizes[6] + c2) * 16 + c3) * 8 + c4;
        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[6] && c3 >= 0 && c3 < 16 && c4 >= 0 && c4 < 8) { b8[o] = wg[33 + e]; }
    }
    workgroupBarrier();
    if (li < 1) {
        let i: i32 = 0;
        let e: i32 = li;
        let r: i32 = e;
        let s: i32 = 0;
        let c0: i32 = v0;
        let c1: i32 = v1;
        let c2: i32 = v2;
        let o: i32 = ((c0) * sizes[2] + c1) * sizes[6] + c2;
        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[6]) { b9[o] = wg[1 + e]; }
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        let c0: i32 = v0;
        let c1: i32 = ((v2 * (16)) + r);
        let c2: i32 = v1;
        let c3: i32 = s;
        let o: i32 = (((c0) * sizes[1] + c1) * sizes[2] + c2) * 16 + c3;
        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 16) { b10[o] = wg[1057 + e]; }
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        let c0: i32 = v0;
        let c1: i32 = ((v2 * (16)) + r);
        let c2: i32 = v1;
        let c3: i32 = s;
        let o: i32 = (((c0) * sizes[1] + c1) * sizes[2] + c2) * 16 + c3;
        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 16) { b11[o] = wg[161 + e]; }
    }
    workgroupBarrier();
}

// kernel `level_scan` of `loglinear_gated_deltanet.forward` (loglinear-wgsl)
@group(0) @binding(0) var<storage, read> sizes: array<i32, 12>;
override wave_base: i32 = 0;
// buffer `cw` f32 ["B", "H", "NT", "16", "8"]
@group(0) @binding(1) var<storage, read_write> b8: array<f32>;
// buffer `dec` f32 ["B", "H", "NT"]
@group(0) @binding(2) var<storage, read_write> b9: array<f32>;
// buffer `kt` f32 ["B", "T", "H", "16"]
@group(0) @binding(3) var<storage, read_write> b10: array<f32>;
// buffer `wt` f32 ["B", "T", "H", "16"]
@group(0) @binding(4) var<storage, read_write> b11: array<f32>;
// buffer `hs` f32 ["B", "H", "M", "NT", "16", "8"]
@group(0) @binding(5) var<storage, read_write> b12: array<f32>;
var<workgroup> wg: array<f32, 897>;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lidx: u32) {
    let li: i32 = i32(lidx);
    let wp: i32 = i32(wid.x + wid.y * nwg.x);
    var p: i32 = wp + wave_base;
    if (p >= sizes[0] * sizes[2] * sizes[8]) { return; }
    var v0: i32 = 0;
    var v1: i32 = 0;
    var v2: i32 = 0;
    var v3: i32 = 0;
    v2 = p % sizes[8];
    p = p / sizes[8];
    v1 = p % sizes[2];
    p = p / sizes[2];
    v0 = p % sizes[0];
    p = p / sizes[0];
    if (li < 128) {
        let i: i32 = 0;
        let e: i32 = li;
        let r: i32 = e / 8;
        let s: i32 = e % 8;
        wg[1 + e] = 0.0;
    }
    workgroupBarrier();
    for (v3 = 0; v3 < sizes[6]; v3 = v3 + 1) {
        if ((((v3 >> u32(v2)) & 1) != 0)) {
            if (li < 128) {
                let i: i32 = 0;
                let e: i32 = li;
                let r: i32 = e / 8;
                let s: i32 = e % 8;
                let c0: i32 = v0;
                let c1: i32 = v1;
                let c2: i32 = v2;
                let c3: i32 = v3;
                let c4: i32 = r;
                let c5: i32 = s;
                let o: i32 = (((((c0) * sizes[2] + c1) * sizes[8] + c2) * sizes[6] + c3) * 16 + c4) * 8 + c5;
                if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[8] && c3 >= 0 && c3 < sizes[6] && c4 >= 0 && c4 < 16 && c5 >= 0 && c5 < 8) { b12[o] = wg[1 + e]; }
            }
            workgroupBarrier();
        }
        if (((v3 & ((1 << u32((v2 + (1)))) - 1)) == ((1 << u32((v2 + (1)))) - 1))) {
            if (li < 128) {
                let i: i32 = 0;
                let e: i32 = li;
                let r: i32 = e / 8;
                let s: i32 = e % 8;
                wg[1 + e] = 0.0;
            }
            workgroupBarrier();
        } else {
            if (li < 1) {
                let i: i32 = 0;
                let e: i32 = li;
                let r: i32 = e;
                let s: i32 = 0;
                let c0: i32 = v0;
                let c1: i32 = v1;
                let c2: i32 = v3;
                let o: i32 = ((c0) * sizes[2] + c1) * sizes[6] + c2;
                var x: f32 = 0.0;
                if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[6]) { x = b9[o]; }
                wg[e] = x;
            }
            workgroupBarrier();
            for (var e: i32 = li; e < 256; e = e + 128) {
                let i: i32 = (e - li) / 128;
                let r: i32 = e / 16;
                let s: i32 = e % 16;
                let c0: i32 = v0;
                let c1: i32 = ((v3 * (16)) + r);
                let c2: i32 = v1;
                let c3: i32 = s;
                let o: i32 = (((c0) * sizes[1] + c1) * sizes[2] + c2) * 16 + c3;
                var x: f32 = 0.0;
                if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 16) { x = b10[o]; }
                wg[385 + e] = x;
            }
            workgroupBarrier();
            for (var e: i32 = li; e < 256; e = e + 128) {
                let i: i32 = (e - li) / 128;
                let r: i32 = e / 16;
                let s: i32 = e % 16;
                let c0: i32 = v0;
                let c1: i32 = ((v3 * (16)) + r);
                let c2: i32 = v1;
                let c3: i32 = s;
                let o: i32 = (((c0) * sizes[1] + c1) * sizes[2] + c2) * 16 + c3;
                var x: f32 = 0.0;
                if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 16) { x = b11[o]; }
                wg[641 + e] = x;
            }
            workgroupBarrier();
            if (li < 128) {
                let i: i32 = 0;
                let e: i32 = li;
                let r0: i32 = (e / 8) * 1;
                let s0: i32 = (e % 8) * 1;
                var a00: f32 = 0.0;
                for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                    {
                        let q: i32 = q0 + 0;
                        let x0: f32 = wg[641 + (r0 + 0) * 16 + q];
                        let y0: f32 = wg[1 + q * 8 + s0 + 0];
                        a00 = fma(x0, y0, a00);
                    }
                    {
                        let q: i32 = q0 + 1;
                        let x0: f32 = wg[641 + (r0 + 0) * 16 + q];
                        let y0: f32 = wg[1 + q * 8 + s0 + 0];
                        a00 = fma(x0, y0, a00);
                    }
                }
                wg[129 + (r0 + 0) * 8 + s0 + 0] = a00;
            }
            workgroupBarrier();
            if (li < 128) {
                let i: i32 = 0;
                let e: i32 = li;
                let r0: i32 = (e / 8) * 1;
                let s0: i32 = (e % 8) * 1;
                var a00: f32 = 0.0;
                for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                    {
                        let q: i32 = q0 + 0;
                        let x0: f32 = wg[385 + q * 16 + r0 + 0];
                        let y0: f32 = wg[129 + q * 8 + s0 + 0];
                        a00 = fma(x0, y0, a00);
                    }
                    {
                        let q: i32 = q0 + 1;
                        let x0: f32 = wg[385 + q * 16 + r0 + 0];
                        let y0: f32 = wg[129 + q * 8 + s0 + 0];
                        a00 = fma(x0, y0, a00);
                    }
                }
                wg[257 + (r0 + 0) * 8 + s0 + 0] = a00;
            }
            workgroupBarrier();
            if (li < 128) {
                let i: i32 = 0;
                let e: i32 = li;
                let r: i32 = e / 8;
                let s: i32 = e % 8;
                wg[1 + e] = (wg[1 + r * 8 + s] * wg[0]);
            }
            workgroupBarrier();
            if (li < 128) {
                let i: i32 = 0;
                let e: i32 = li;
                let r: i32 = e / 8;
                let s: i32 = e % 8;
                wg[1 + e] = (wg[1 + r * 8 + s] - wg[257 + r * 8 + s]);
            }
            workgroupBarrier();
        }
        if ((!(((v3 >> u32(v2)) & 1) != 0))) {
            if (li < 128) {
                let i: i32 = 0;
                let e: i32 = li;
                let r: i32 = e / 8;
                let s: i32 = e % 8;
                let c0: i32 = v0;
                let c1: i32 = v1;
                let c2: i32 = v3;
                let c3: i32 = r;
                let c4: i32 = s;
                let o: i32 = ((((c0) * sizes[2] + c1) * sizes[6] + c2) * 16 + c3) * 8 + c4;
                var x: f32 = 0.0;
                if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[6] && c3 >= 0 && c3 < 16 && c4 >= 0 && c4 < 8) { x = b8[o]; }
                wg[129 + e] = x;
            }
            workgroupBarrier();
            if (li < 128) {
                let i: i32 = 0;
                let e: i32 = li;
                let r: i32 = e / 8;
                let s: i32 = e % 8;
                wg[1 + e] = (wg[1 + r * 8 + s] + wg[129 + r * 8 + s]);
            }
            workgroupBarrier();
        }
    }
}

// kernel `level_read` of `loglinear_gated_deltanet.forward` (loglinear-wgsl)
@group(0) @binding(0) var<storage, read> sizes: array<i32, 12>;
override wave_base: i32 = 0;
// buffer `lam` f32 ["B", "T", "H", "L"]
@group(0) @binding(1) var<storage, read> b5: array<f32>;
// buffer `o` f32 ["B", "T", "H", "8"]
@group(0) @binding(2) var<storage, read_write> b6: array<f32>;
// buffer `qt` f32 ["B", "T", "H", "16"]
@group(0) @binding(3) var<storage, read_write> b7: array<f32>;
// buffer `hs` f32 ["B", "H", "M", "NT", "16", "8"]
@group(0) @binding(4) var<storage, read_write> b12: array<f32>;
var<workgroup> wg: array<f32, 1680>;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lidx: u32) {
    let li: i32 = i32(lidx);
    let wp: i32 = i32(wid.x + wid.y * nwg.x);
    var p: i32 = wp + wave_base;
    if (p >= sizes[0] * sizes[2] * sizes[6]) { return; }
    var v0: i32 = 0;
    var v1: i32 = 0;
    var v2: i32 = 0;
    var v3: i32 = 0;
    v2 = p % sizes[6];
    p = p / sizes[6];
    v1 = p % sizes[2];
    p = p / sizes[2];
    v0 = p % sizes[0];
    p = p / sizes[0];
    if (li < 128) {
        let i: i32 = 0;
        let e: i32 = li;
        let r: i32 = e / 8;
        let s: i32 = e % 8;
        let c0: i32 = v0;
        let c1: i32 = ((v2 * (16)) + r);
        let c2: i32 = v1;
        let c3: i32 = s;
        let o: i32 = (((c0) * sizes[1] + c1) * sizes[2] + c2) * 8 + c3;
        var x: f32 = 0.0;
        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 8) { x = b6[o]; }
        wg[16 + e] = x;
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 256; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 16;
        let s: i32 = e % 16;
        let c0: i32 = v0;
        let c1: i32 = ((v2 * (16)) + r);
        let c2: i32 = v1;
        let c3: i32 = s;
        let o: i32 = (((c0) * sizes[1] + c1) * sizes[2] + c2) * 16 + c3;
        var x: f32 = 0.0;
        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 16) { x = b7[o]; }
        wg[400 + e] = x;
    }
    workgroupBarrier();
    for (var e: i32 = li; e < 512; e = e + 128) {
        let i: i32 = (e - li) / 128;
        let r: i32 = e / 32;
        let s: i32 = e % 32;
        let c0: i32 = v0;
        let c1: i32 = ((v2 * (16)) + r);
        let c2: i32 = v1;
        let c3: i32 = ((0) + s);
        let o: i32 = (((c0) * sizes[1] + c1) * sizes[2] + c2) * sizes[5] + c3;
        var x: f32 = 0.0;
        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < sizes[5]) { x = b5[o]; }
        wg[656 + e] = x;
    }
    workgroupBarrier();
    for (v3 = 0; v3 < sizes[8]; v3 = v3 + 1) {
        if ((((v2 >> u32(v3)) & 1) != 0)) {
            if (li < 128) {
                let i: i32 = 0;
                let e: i32 = li;
                let r: i32 = e / 8;
                let s: i32 = e % 8;
                let c0: i32 = v0;
                let c1: i32 = v1;
                let c2: i32 = v3;
                let c3: i32 = v2;
                let c4: i32 = r;
                let c5: i32 = s;
                let o: i32 = (((((c0) * sizes[2] + c1) * sizes[8] + c2) * sizes[6] + c3) * 16 + c4) * 8 + c5;
                var x: f32 = 0.0;
                if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[8] && c3 >= 0 && c3 < sizes[6] && c4 >= 0 && c4 < 16 && c5 >= 0 && c5 < 8) { x = b12[o]; }
                wg[144 + e] = x;
            }
            workgroupBarrier();
            if (li < 128) {
                let i: i32 = 0;
                let e: i32 = li;
                let r0: i32 = (e / 8) * 1;
                let s0: i32 = (e % 8) * 1;
                var a00: f32 = 0.0;
                for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                    {
                        let q: i32 = q0 + 0;
                        let x0: f32 = wg[400 + (r0 + 0) * 16 + q];
                        let y0: f32 = wg[144 + q * 8 + s0 + 0];
                        a00 = fma(x0, y0, a00);
                    }
                    {
                        let q: i32 = q0 + 1;
                        let x0: f32 = wg[400 + (r0 + 0) * 16 + q];
                        let y0: f32 = wg[144 + q * 8 + s0 + 0];
                        a00 = fma(x0, y0, a00);
                    }
                }
                wg[272 + (r0 + 0) * 8 + s0 + 0] = a00;
            }
            workgroupBarrier();
            for (var e: i32 = li; e < 512; e = e + 128) {
                let i: i32 = (e - li) / 128;
                let r: i32 = e / 32;
                let s: i32 = e % 32;
                wg[1168 + e] = select(0.0, wg[656 + r * 32 + s], (s == ((5) + v3)));
            }
            workgroupBarrier();
            if (li < 16) {
                let i: i32 = 0;
                let o: i32 = li;
                var acc: f32 = 0.0;
                for (var q0: i32 = 0; q0 < 32; q0 = q0 + 2) {
                    {
                        let q: i32 = q0 + 0;
                        acc = acc + wg[1168 + o * 32 + q];
                    }
                    {
                        let q: i32 = q0 + 1;
                        acc = acc + wg[1168 + o * 32 + q];
                    }
                }
                wg[o] = acc;
            }
            workgroupBarrier();
            if (li < 128) {
                let i: i32 = 0;
                let e: i32 = li;
                let r: i32 = e / 8;
                let s: i32 = e % 8;
                wg[144 + e] = (wg[272 + r * 8 + s] * wg[r]);
            }
            workgroupBarrier();
            if (li < 128) {
                let i: i32 = 0;
                let e: i32 = li;
                let r: i32 = e / 8;
                let s: i32 = e % 8;
                wg[16 + e] = (wg[16 + r * 8 + s] + wg[144 + r * 8 + s]);
            }
            workgroupBarrier();
        }
    }
    if (li < 128) {
        let i: i32 = 0;
        let e: i32 = li;
        let r: i32 = e / 8;
        let s: i32 = e % 8;
        let c0: i32 = v0;
        let c1: i32 = ((v2 * (16)) + r);
        let c2: i32 = v1;
        let c3: i32 = s;
        let o: i32 = (((c0) * sizes[1] + c1) * sizes[2] + c2) * 8 + c3;
        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 8) { b6[o] = wg[16 + e]; }
    }
    workgroupBarrier();
}

// kernel `final_state` of `loglinear_gated_deltanet.forward` (loglinear-wgsl)
@group(0) @binding(0) var<storage, read> sizes: array<i32, 12>;
override wave_base: i32 = 0;
// buffer `k` f32 ["B", "T", "H", "16"]
@group(0) @binding(1) var<storage, read> b1: array<f32>;
// buffer `v` f32 ["B", "T", "H", "8"]
@group(0) @binding(2) var<storage, read> b2: array<f32>;
// buffer `g` f32 ["B", "T", "H"]
@group(0) @binding(3) var<storage, read> b3: array<f32>;
// buffer `beta` f32 ["B", "T", "H"]
@group(0) @binding(4) var<storage, read> b4: array<f32>;
// buffer `dec` f32 ["B", "H", "NT"]
@group(0) @binding(5) var<storage, read_write> b9: array<f32>;
// buffer `kt` f32 ["B", "T", "H", "16"]
@group(0) @binding(6) var<storage, read_write> b10: array<f32>;
// buffer `wt` f32 ["B", "T", "H", "16"]
@group(0) @binding(7) var<storage, read_write> b11: array<f32>;
// buffer `hs` f32 ["B", "H", "M", "NT", "16", "8"]
@group(0) @binding(8) var<storage, read_write> b12: array<f32>;
// buffer `state` f32 ["B", "H", "LC", "16", "8"]
@group(0) @binding(9) var<storage, read_write> b13: array<f32>;
var<workgroup> wg: array<f32, 1696>;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lidx: u32) {
    let li: i32 = i32(lidx);
    let wp: i32 = i32(wid.x + wid.y * nwg.x);
    var p: i32 = wp + wave_base;
    if (p >= sizes[0] * sizes[2] * sizes[10]) { return; }
    var v0: i32 = 0;
    var v1: i32 = 0;
    var v2: i32 = 0;
    var v3: i32 = 0;
    var v4: i32 = 0;
    v2 = p % sizes[10];
    p = p / sizes[10];
    v1 = p % sizes[2];
    p = p / sizes[2];
    v0 = p % sizes[0];
    p = p / sizes[0];
    if ((v2 >= (5))) {
        if (li < 128) {
            let i: i32 = 0;
            let e: i32 = li;
            let r: i32 = e / 8;
            let s: i32 = e % 8;
            wg[e] = 0.0;
        }
        workgroupBarrier();
        if (li < 128) {
            let i: i32 = 0;
            let e: i32 = li;
            let r: i32 = e / 8;
            let s: i32 = e % 8;
            let c0: i32 = v0;
            let c1: i32 = v1;
            let c2: i32 = v2;
            let c3: i32 = r;
            let c4: i32 = s;
            let o: i32 = ((((c0) * sizes[2] + c1) * sizes[10] + c2) * 16 + c3) * 8 + c4;
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[10] && c3 >= 0 && c3 < 16 && c4 >= 0 && c4 < 8) { b13[o] = wg[e]; }
        }
        workgroupBarrier();
        for (v3 = 0; v3 < sizes[8]; v3 = v3 + 1) {
            if (((v2 >= (v3 + (5))) && ((!(v2 >= (v3 + (6)))) && ((((sizes[6] + (-1)) >> u32(v3)) & 1) != 0)))) {
                if (li < 128) {
                    let i: i32 = 0;
                    let e: i32 = li;
                    let r: i32 = e / 8;
                    let s: i32 = e % 8;
                    let c0: i32 = v0;
                    let c1: i32 = v1;
                    let c2: i32 = v3;
                    let c3: i32 = (sizes[6] + (-1));
                    let c4: i32 = r;
                    let c5: i32 = s;
                    let o: i32 = (((((c0) * sizes[2] + c1) * sizes[8] + c2) * sizes[6] + c3) * 16 + c4) * 8 + c5;
                    var x: f32 = 0.0;
                    if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[8] && c3 >= 0 && c3 < sizes[6] && c4 >= 0 && c4 < 16 && c5 >= 0 && c5 < 8) { x = b12[o]; }
                    wg[1 + e] = x;
                }
                workgroupBarrier();
                if (li < 1) {
                    let i: i32 = 0;
                    let e: i32 = li;
                    let r: i32 = e;
                    let s: i32 = 0;
                    let c0: i32 = v0;
                    let c1: i32 = v1;
                    let c2: i32 = (sizes[6] + (-1));
                    let o: i32 = ((c0) * sizes[2] + c1) * sizes[6] + c2;
                    var x: f32 = 0.0;
                    if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[6]) { x = b9[o]; }
                    wg[e] = x;
                }
                workgroupBarrier();
                for (var e: i32 = li; e < 256; e = e + 128) {
                    let i: i32 = (e - li) / 128;
                    let r: i32 = e / 16;
                    let s: i32 = e % 16;
                    let c0: i32 = v0;
                    let c1: i32 = (((sizes[6] + (-1)) * (16)) + r);
                    let c2: i32 = v1;
                    let c3: i32 = s;
                    let o: i32 = (((c0) * sizes[1] + c1) * sizes[2] + c2) * 16 + c3;
                    var x: f32 = 0.0;
                    if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 16) { x = b10[o]; }
                    wg[385 + e] = x;
                }
                workgroupBarrier();
                for (var e: i32 = li; e < 256; e = e + 128) {
                    let i: i32 = (e - li) / 128;
                    let r: i32 = e / 16;
                    let s: i32 = e % 16;
                    let c0: i32 = v0;
                    let c1: i32 = (((sizes[6] + (-1)) * (16)) + r);
                    let c2: i32 = v1;
                    let c3: i32 = s;
                    let o: i32 = (((c0) * sizes[1] + c1) * sizes[2] + c2) * 16 + c3;
                    var x: f32 = 0.0;
                    if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 16) { x = b11[o]; }
                    wg[641 + e] = x;
                }
                workgroupBarrier();
                if (li < 128) {
                    let i: i32 = 0;
                    let e: i32 = li;
                    let r0: i32 = (e / 8) * 1;
                    let s0: i32 = (e % 8) * 1;
                    var a00: f32 = 0.0;
                    for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                        {
                            let q: i32 = q0 + 0;
                            let x0: f32 = wg[641 + (r0 + 0) * 16 + q];
                            let y0: f32 = wg[1 + q * 8 + s0 + 0];
                            a00 = fma(x0, y0, a00);
                        }
                        {
                            let q: i32 = q0 + 1;
                            let x0: f32 = wg[641 + (r0 + 0) * 16 + q];
                            let y0: f32 = wg[1 + q * 8 + s0 + 0];
                            a00 = fma(x0, y0, a00);
                        }
                    }
                    wg[129 + (r0 + 0) * 8 + s0 + 0] = a00;
                }
                workgroupBarrier();
                if (li < 128) {
                    let i: i32 = 0;
                    let e: i32 = li;
                    let r0: i32 = (e / 8) * 1;
                    let s0: i32 = (e % 8) * 1;
                    var a00: f32 = 0.0;
                    for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                        {
                            let q: i32 = q0 + 0;
                            let x0: f32 = wg[385 + q * 16 + r0 + 0];
                            let y0: f32 = wg[129 + q * 8 + s0 + 0];
                            a00 = fma(x0, y0, a00);
                        }
                        {
                            let q: i32 = q0 + 1;
                            let x0: f32 = wg[385 + q * 16 + r0 + 0];
                            let y0: f32 = wg[129 + q * 8 + s0 + 0];
                            a00 = fma(x0, y0, a00);
                        }
                    }
                    wg[257 + (r0 + 0) * 8 + s0 + 0] = a00;
                }
                workgroupBarrier();
                if (li < 128) {
                    let i: i32 = 0;
                    let e: i32 = li;
                    let r: i32 = e / 8;
                    let s: i32 = e % 8;
                    wg[1 + e] = (wg[1 + r * 8 + s] * wg[0]);
                }
                workgroupBarrier();
                if (li < 128) {
                    let i: i32 = 0;
                    let e: i32 = li;
                    let r: i32 = e / 8;
                    let s: i32 = e % 8;
                    wg[1 + e] = (wg[1 + r * 8 + s] - wg[257 + r * 8 + s]);
                }
                workgroupBarrier();
                if (li < 128) {
                    let i: i32 = 0;
                    let e: i32 = li;
                    let r: i32 = e / 8;
                    let s: i32 = e % 8;
                    let c0: i32 = v0;
                    let c1: i32 = v1;
                    let c2: i32 = v2;
                    let c3: i32 = r;
                    let c4: i32 = s;
                    let o: i32 = ((((c0) * sizes[2] + c1) * sizes[10] + c2) * 16 + c3) * 8 + c4;
                    if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[10] && c3 >= 0 && c3 < 16 && c4 >= 0 && c4 < 8) { b13[o] = wg[1 + e]; }
                }
                workgroupBarrier();
            }
        }
    } else {
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            let c0: i32 = v0;
            let c1: i32 = (((sizes[6] + (-1)) * (16)) + r);
            let c2: i32 = v1;
            let c3: i32 = s;
            let o: i32 = (((c0) * sizes[1] + c1) * sizes[2] + c2) * 16 + c3;
            var x: f32 = 0.0;
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 16) { x = b1[o]; }
            wg[416 + e] = x;
        }
        workgroupBarrier();
        if (li < 128) {
            let i: i32 = 0;
            let e: i32 = li;
            let r: i32 = e / 8;
            let s: i32 = e % 8;
            let c0: i32 = v0;
            let c1: i32 = (((sizes[6] + (-1)) * (16)) + r);
            let c2: i32 = v1;
            let c3: i32 = s;
            let o: i32 = (((c0) * sizes[1] + c1) * sizes[2] + c2) * 8 + c3;
            var x: f32 = 0.0;
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 8) { x = b2[o]; }
            wg[32 + e] = x;
        }
        workgroupBarrier();
        if (li < 16) {
            let i: i32 = 0;
            let e: i32 = li;
            let r: i32 = e;
            let s: i32 = 0;
            let c0: i32 = v0;
            let c1: i32 = (((sizes[6] + (-1)) * (16)) + r);
            let c2: i32 = v1;
            let o: i32 = ((c0) * sizes[1] + c1) * sizes[2] + c2;
            var x: f32 = 0.0;
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2]) { x = b3[o]; }
            wg[e] = x;
        }
        workgroupBarrier();
        if (li < 16) {
            let i: i32 = 0;
            let e: i32 = li;
            let r: i32 = e;
            let s: i32 = 0;
            let c0: i32 = v0;
            let c1: i32 = (((sizes[6] + (-1)) * (16)) + r);
            let c2: i32 = v1;
            let o: i32 = ((c0) * sizes[1] + c1) * sizes[2] + c2;
            var x: f32 = 0.0;
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2]) { x = b4[o]; }
            wg[16 + e] = x;
        }
        workgroupBarrier();
        if (li < 128) {
            let i: i32 = 0;
            let e: i32 = li;
            let r: i32 = e / 8;
            let s: i32 = e % 8;
            wg[160 + e] = (wg[32 + r * 8 + s] * wg[16 + r]);
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[672 + e] = select(0.0, 1.0, ((s <= r) && (32 - i32(countLeadingZeros(r ^ s)) == v2)));
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[928 + e] = select(0.0, wg[672 + r * 16 + s], (r == ((sizes[1] + (-1)) + ((-1) * ((sizes[6] + (-1)) * (16))))));
        }
        workgroupBarrier();
        if (li < 16) {
            let i: i32 = 0;
            let o: i32 = li;
            var acc: f32 = 0.0;
            for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                {
                    let q: i32 = q0 + 0;
                    acc = acc + wg[928 + q * 16 + o];
                }
                {
                    let q: i32 = q0 + 1;
                    acc = acc + wg[928 + q * 16 + o];
                }
            }
            wg[32 + o] = acc;
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[672 + e] = select(0.0, wg[32 + s], (s == r));
        }
        workgroupBarrier();
        if (li < 16) {
            let i: i32 = 0;
            let o: i32 = li;
            var acc: f32 = 0.0;
            for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                {
                    let q: i32 = q0 + 0;
                    acc = acc + wg[672 + o * 16 + q];
                }
                {
                    let q: i32 = q0 + 1;
                    acc = acc + wg[672 + o * 16 + q];
                }
            }
            wg[32 + o] = acc;
        }
        workgroupBarrier();
        if (li < 128) {
            let i: i32 = 0;
            let e: i32 = li;
            let r: i32 = e / 8;
            let s: i32 = e % 8;
            wg[288 + e] = (wg[160 + r * 8 + s] * wg[32 + r]);
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[32 + e] = select(0.0, 1.0, (s <= r));
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[672 + e] = select(0.0, wg[r], (s < r));
        }
        workgroupBarrier();
        if (li < 128) {
            let i: i32 = 0;
            let e: i32 = li;
            let r0: i32 = (e / 16) * 2;
            let s0: i32 = (e % 16) * 1;
            var a00: f32 = 0.0;
            var a10: f32 = 0.0;
            for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                {
                    let q: i32 = q0 + 0;
                    let x0: f32 = wg[32 + (r0 + 0) * 16 + q];
                    let x1: f32 = wg[32 + (r0 + 1) * 16 + q];
                    let y0: f32 = wg[672 + q * 16 + s0 + 0];
                    a00 = fma(x0, y0, a00);
                    a10 = fma(x1, y0, a10);
                }
                {
                    let q: i32 = q0 + 1;
                    let x0: f32 = wg[32 + (r0 + 0) * 16 + q];
                    let x1: f32 = wg[32 + (r0 + 1) * 16 + q];
                    let y0: f32 = wg[672 + q * 16 + s0 + 0];
                    a00 = fma(x0, y0, a00);
                    a10 = fma(x1, y0, a10);
                }
            }
            wg[928 + (r0 + 0) * 16 + s0 + 0] = a00;
            wg[928 + (r0 + 1) * 16 + s0 + 0] = a10;
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[32 + e] = select(-3.4028235e38, wg[928 + r * 16 + s], (s <= r));
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[672 + e] = select(exp(min(wg[32 + r * 16 + s], 0.0)), 0.0, wg[32 + r * 16 + s] < -87.0);
        }
        workgroupBarrier();
        if (li < 128) {
            let i: i32 = 0;
            let e: i32 = li;
            let r0: i32 = (e / 16) * 2;
            let s0: i32 = (e % 16) * 1;
            var a00: f32 = 0.0;
            var a10: f32 = 0.0;
            for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                {
                    let q: i32 = q0 + 0;
                    let x0: f32 = wg[416 + (r0 + 0) * 16 + q];
                    let x1: f32 = wg[416 + (r0 + 1) * 16 + q];
                    let y0: f32 = wg[416 + (s0 + 0) * 16 + q];
                    a00 = fma(x0, y0, a00);
                    a10 = fma(x1, y0, a10);
                }
                {
                    let q: i32 = q0 + 1;
                    let x0: f32 = wg[416 + (r0 + 0) * 16 + q];
                    let x1: f32 = wg[416 + (r0 + 1) * 16 + q];
                    let y0: f32 = wg[416 + (s0 + 0) * 16 + q];
                    a00 = fma(x0, y0, a00);
                    a10 = fma(x1, y0, a10);
                }
            }
            wg[32 + (r0 + 0) * 16 + s0 + 0] = a00;
            wg[32 + (r0 + 1) * 16 + s0 + 0] = a10;
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[928 + e] = (wg[32 + r * 16 + s] * wg[16 + r]);
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[1184 + e] = select(0.0, 1.0, (s == r));
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[16 + e] = (wg[928 + r * 16 + s] * wg[672 + r * 16 + s]);
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[672 + e] = select(0.0, wg[16 + r * 16 + s], (s < r));
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[928 + e] = select(0.0, wg[672 + r * 16 + s], (s < r));
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[672 + e] = 0.0;
        }
        workgroupBarrier();
        for (v4 = 0; v4 < 16; v4 = v4 + 1) {
            for (var e: i32 = li; e < 256; e = e + 128) {
                let i: i32 = (e - li) / 128;
                let r: i32 = e / 16;
                let s: i32 = e % 16;
                wg[32 + e] = select(0.0, wg[928 + r * 16 + s], (r == v4));
            }
            workgroupBarrier();
            if (li < 16) {
                let i: i32 = 0;
                let o: i32 = li;
                var acc: f32 = 0.0;
                for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                    {
                        let q: i32 = q0 + 0;
                        acc = acc + wg[32 + q * 16 + o];
                    }
                    {
                        let q: i32 = q0 + 1;
                        acc = acc + wg[32 + q * 16 + o];
                    }
                }
                wg[16 + o] = acc;
            }
            workgroupBarrier();
            if (li < 16) {
                let i: i32 = 0;
                let e: i32 = li;
                let r0: i32 = (e / 16) * 1;
                let s0: i32 = (e % 16) * 1;
                var a00: f32 = 0.0;
                for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                    {
                        let q: i32 = q0 + 0;
                        let x0: f32 = wg[16 + (r0 + 0) * 16 + q];
                        let y0: f32 = wg[672 + q * 16 + s0 + 0];
                        a00 = fma(x0, y0, a00);
                    }
                    {
                        let q: i32 = q0 + 1;
                        let x0: f32 = wg[16 + (r0 + 0) * 16 + q];
                        let y0: f32 = wg[672 + q * 16 + s0 + 0];
                        a00 = fma(x0, y0, a00);
                    }
                }
                wg[32 + (r0 + 0) * 16 + s0 + 0] = a00;
            }
            workgroupBarrier();
            for (var e: i32 = li; e < 256; e = e + 128) {
                let i: i32 = (e - li) / 128;
                let r: i32 = e / 16;
                let s: i32 = e % 16;
                wg[1440 + e] = select(0.0, wg[1184 + r * 16 + s], (r == v4));
            }
            workgroupBarrier();
            if (li < 16) {
                let i: i32 = 0;
                let o: i32 = li;
                var acc: f32 = 0.0;
                for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                    {
                        let q: i32 = q0 + 0;
                        acc = acc + wg[1440 + q * 16 + o];
                    }
                    {
                        let q: i32 = q0 + 1;
                        acc = acc + wg[1440 + q * 16 + o];
                    }
                }
                wg[16 + o] = acc;
            }
            workgroupBarrier();
            if (li < 16) {
                let i: i32 = 0;
                let e: i32 = li;
                let r: i32 = 0;
                let s: i32 = e;
                wg[16 + e] = (wg[16 + s] - wg[32 + s]);
            }
            workgroupBarrier();
            for (var e: i32 = li; e < 256; e = e + 128) {
                let i: i32 = (e - li) / 128;
                let r: i32 = e / 16;
                let s: i32 = e % 16;
                wg[32 + e] = select(0.0, wg[16 + s], (r == v4));
            }
            workgroupBarrier();
            for (var e: i32 = li; e < 256; e = e + 128) {
                let i: i32 = (e - li) / 128;
                let r: i32 = e / 16;
                let s: i32 = e % 16;
                wg[672 + e] = (wg[672 + r * 16 + s] + wg[32 + r * 16 + s]);
            }
            workgroupBarrier();
        }
        if (li < 128) {
            let i: i32 = 0;
            let e: i32 = li;
            let r0: i32 = (e / 8) * 1;
            let s0: i32 = (e % 8) * 1;
            var a00: f32 = 0.0;
            for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                {
                    let q: i32 = q0 + 0;
                    let x0: f32 = wg[672 + (r0 + 0) * 16 + q];
                    let y0: f32 = wg[288 + q * 8 + s0 + 0];
                    a00 = fma(x0, y0, a00);
                }
                {
                    let q: i32 = q0 + 1;
                    let x0: f32 = wg[672 + (r0 + 0) * 16 + q];
                    let y0: f32 = wg[288 + q * 8 + s0 + 0];
                    a00 = fma(x0, y0, a00);
                }
            }
            wg[32 + (r0 + 0) * 8 + s0 + 0] = a00;
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[160 + e] = select(0.0, 1.0, (s < r));
        }
        workgroupBarrier();
        if (li < 16) {
            let i: i32 = 0;
            let e: i32 = li;
            let r0: i32 = e * 1;
            let s0: i32 = 0;
            var a00: f32 = 0.0;
            for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                {
                    let q: i32 = q0 + 0;
                    let x0: f32 = wg[160 + q * 16 + r0 + 0];
                    let y0: f32 = wg[q * 1 + s0 + 0];
                    a00 = fma(x0, y0, a00);
                }
                {
                    let q: i32 = q0 + 1;
                    let x0: f32 = wg[160 + q * 16 + r0 + 0];
                    let y0: f32 = wg[q * 1 + s0 + 0];
                    a00 = fma(x0, y0, a00);
                }
            }
            wg[16 + (r0 + 0) * 1 + s0 + 0] = a00;
        }
        workgroupBarrier();
        if (li < 16) {
            let i: i32 = 0;
            let e: i32 = li;
            let r: i32 = e;
            let s: i32 = 0;
            wg[e] = select(exp(min(wg[16 + r], 0.0)), 0.0, wg[16 + r] < -87.0);
        }
        workgroupBarrier();
        for (var e: i32 = li; e < 256; e = e + 128) {
            let i: i32 = (e - li) / 128;
            let r: i32 = e / 16;
            let s: i32 = e % 16;
            wg[672 + e] = (wg[416 + r * 16 + s] * wg[r]);
        }
        workgroupBarrier();
        if (li < 128) {
            let i: i32 = 0;
            let e: i32 = li;
            let r0: i32 = (e / 8) * 1;
            let s0: i32 = (e % 8) * 1;
            var a00: f32 = 0.0;
            for (var q0: i32 = 0; q0 < 16; q0 = q0 + 2) {
                {
                    let q: i32 = q0 + 0;
                    let x0: f32 = wg[672 + q * 16 + r0 + 0];
                    let y0: f32 = wg[32 + q * 8 + s0 + 0];
                    a00 = fma(x0, y0, a00);
                }
                {
                    let q: i32 = q0 + 1;
                    let x0: f32 = wg[672 + q * 16 + r0 + 0];
                    let y0: f32 = wg[32 + q * 8 + s0 + 0];
                    a00 = fma(x0, y0, a00);
                }
            }
            wg[160 + (r0 + 0) * 8 + s0 + 0] = a00;
        }
        workgroupBarrier();
        if (li < 128) {
            let i: i32 = 0;
            let e: i32 = li;
            let r: i32 = e / 8;
            let s: i32 = e % 8;
            let c0: i32 = v0;
            let c1: i32 = v1;
            let c2: i32 = v2;
            let c3: i32 = r;
            let c4: i32 = s;
            let o: i32 = ((((c0) * sizes[2] + c1) * sizes[10] + c2) * 16 + c3) * 8 + c4;
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[10] && c3 >= 0 && c3 < 16 && c4 >= 0 && c4 < 8) { b13[o] = wg[160 + e]; }
        }
        workgroupBarrier();
    }
}

