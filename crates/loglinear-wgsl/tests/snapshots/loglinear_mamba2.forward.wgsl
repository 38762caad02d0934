// kernel `chunk` of `loglinear_mamba2.forward` (loglinear-wgsl)
@group(0) @binding(0) var<storage, read> sizes: array<i32, 12>;
// buffer `q` ["B", "T", "H", "16"]
@group(0) @binding(1) var<storage, read> b0: array<f32>;
// buffer `k` ["B", "T", "H", "16"]
@group(0) @binding(2) var<storage, read> b1: array<f32>;
// buffer `v` ["B", "T", "H", "8"]
@group(0) @binding(3) var<storage, read> b2: array<f32>;
// buffer `g` ["B", "T", "H"]
@group(0) @binding(4) var<storage, read> b3: array<f32>;
// buffer `lam` ["B", "T", "H", "L"]
@group(0) @binding(5) var<storage, read> b4: array<f32>;
// buffer `o` ["B", "T", "H", "8"]
@group(0) @binding(6) var<storage, read_write> b5: array<f32>;
// buffer `qt` ["B", "T", "H", "16"]
@group(0) @binding(7) var<storage, read_write> b6: array<f32>;
// buffer `cw` ["B", "H", "NT", "16", "8"]
@group(0) @binding(8) var<storage, read_write> b7: array<f32>;
// buffer `dec` ["B", "H", "NT"]
@group(0) @binding(9) var<storage, read_write> b8: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    var p: i32 = i32(gid.x + gid.y * nwg.x * 64u);
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
    var t0: array<f32, 256>;
    var t1: array<f32, 256>;
    var t2: array<f32, 128>;
    var t3: array<f32, 16>;
    var t4: array<f32, 512>;
    var t5: array<f32, 16>;
    var t6: array<f32, 1>;
    var t7: array<f32, 256>;
    var t8: array<f32, 256>;
    var t9: array<f32, 256>;
    var t10: array<f32, 256>;
    var t11: array<f32, 256>;
    var t12: array<f32, 256>;
    var t13: array<f32, 128>;
    var t14: array<f32, 16>;
    var t15: array<f32, 256>;
    var t16: array<f32, 16>;
    var t17: array<f32, 16>;
    var t18: array<f32, 256>;
    var t19: array<f32, 128>;
    var t20: array<f32, 1>;
    var t21: array<f32, 256>;
    var t22: array<f32, 16>;
    var t23: array<f32, 256>;
    var t24: array<f32, 256>;
    var t25: array<f32, 16>;
    var t26: array<f32, 512>;
    var t27: array<f32, 256>;
    var t28: array<f32, 256>;
    var tmp: array<f32, 512>;
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            let c0: i32 = v0;
            let c1: i32 = ((v2 * (16)) + r);
            let c2: i32 = v1;
            let c3: i32 = s;
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 16) { t0[r * 16 + s] = b0[((((0) * sizes[0] + c0) * sizes[1] + c1) * sizes[2] + c2) * 16 + c3]; } else { t0[r * 16 + s] = 0.0; }
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            let c0: i32 = v0;
            let c1: i32 = ((v2 * (16)) + r);
            let c2: i32 = v1;
            let c3: i32 = s;
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 16) { t1[r * 16 + s] = b1[((((0) * sizes[0] + c0) * sizes[1] + c1) * sizes[2] + c2) * 16 + c3]; } else { t1[r * 16 + s] = 0.0; }
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 8; s = s + 1) {
            let c0: i32 = v0;
            let c1: i32 = ((v2 * (16)) + r);
            let c2: i32 = v1;
            let c3: i32 = s;
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 8) { t2[r * 8 + s] = b2[((((0) * sizes[0] + c0) * sizes[1] + c1) * sizes[2] + c2) * 8 + c3]; } else { t2[r * 8 + s] = 0.0; }
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 1; s = s + 1) {
            let c0: i32 = v0;
            let c1: i32 = ((v2 * (16)) + r);
            let c2: i32 = v1;
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2]) { t3[r * 1 + s] = b3[(((0) * sizes[0] + c0) * sizes[1] + c1) * sizes[2] + c2]; } else { t3[r * 1 + s] = 0.0; }
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 32; s = s + 1) {
            let c0: i32 = v0;
            let c1: i32 = ((v2 * (16)) + r);
            let c2: i32 = v1;
            let c3: i32 = ((0) + s);
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < sizes[5]) { t4[r * 32 + s] = b4[((((0) * sizes[0] + c0) * sizes[1] + c1) * sizes[2] + c2) * sizes[5] + c3]; } else { t4[r * 32 + s] = 0.0; }
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            t21[r * 16 + s] = select(0.0, 1.0, (s <= r));
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 1; s = s + 1) {
            var acc: f32 = 0.0;
            for (var q: i32 = 0; q < 16; q = q + 1) { acc = acc + t21[r * 16 + q] * t3[q * 1 + s]; }
            tmp[r * 1 + s] = acc;
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 1; s = s + 1) {
            t5[r * 1 + s] = tmp[r * 1 + s];
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 1; s = s + 1) {
            tmp[r * 1 + s] = select(0.0, t5[r * 1 + 0], (r == (15)));
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 1; s = s + 1) {
            t22[r * 1 + s] = tmp[r * 1 + s];
        }
    }
    for (var o: i32 = 0; o < 1; o = o + 1) {
        var acc: f32 = 0.0;
        for (var q: i32 = 0; q < 16; q = q + 1) { acc = acc + t22[q * 1 + o]; }
        tmp[o] = acc;
    }
    for (var o: i32 = 0; o < 1; o = o + 1) { t6[o] = tmp[o]; }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            tmp[r * 16 + s] = select(0.0, t3[r * 1 + 0], (s < r));
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            t23[r * 16 + s] = tmp[r * 16 + s];
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            var acc: f32 = 0.0;
            for (var q: i32 = 0; q < 16; q = q + 1) { acc = acc + t21[r * 16 + q] * t23[q * 16 + s]; }
            tmp[r * 16 + s] = acc;
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            t24[r * 16 + s] = tmp[r * 16 + s];
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            tmp[r * 16 + s] = select(-3.4028235e38, t24[r * 16 + s], (s <= r));
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            t7[r * 16 + s] = tmp[r * 16 + s];
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            t8[r * 16 + s] = select(exp(min(t7[r * 16 + s], 0.0)), 0.0, t7[r * 16 + s] < -87.0);
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            t9[r * 16 + s] = 0.0;
        }
    }
    for (v3 = 0; v3 < 5; v3 = v3 + 1) {
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 32; s = s + 1) {
                tmp[r * 32 + s] = select(0.0, t4[r * 32 + s], (s == v3));
            }
        }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 32; s = s + 1) {
                t26[r * 32 + s] = tmp[r * 32 + s];
            }
        }
        for (var o: i32 = 0; o < 16; o = o + 1) {
            var acc: f32 = 0.0;
            for (var q: i32 = 0; q < 32; q = q + 1) { acc = acc + t26[o * 32 + q]; }
            tmp[o] = acc;
        }
        for (var o: i32 = 0; o < 16; o = o + 1) { t25[o] = tmp[o]; }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 16; s = s + 1) {
                tmp[r * 16 + s] = select(0.0, t25[r * 1 + 0], ((s <= r) && (32 - i32(countLeadingZeros(r ^ s)) == v3)));
            }
        }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 16; s = s + 1) {
                t27[r * 16 + s] = tmp[r * 16 + s];
            }
        }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 16; s = s + 1) {
                t9[r * 16 + s] = (t9[r * 16 + s] + t27[r * 16 + s]);
            }
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            var acc: f32 = 0.0;
            for (var q: i32 = 0; q < 16; q = q + 1) { acc = acc + t0[r * 16 + q] * t1[s * 16 + q]; }
            tmp[r * 16 + s] = acc;
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            t10[r * 16 + s] = tmp[r * 16 + s];
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            t11[r * 16 + s] = (t10[r * 16 + s] * t8[r * 16 + s]);
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            t12[r * 16 + s] = (t11[r * 16 + s] * t9[r * 16 + s]);
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 8; s = s + 1) {
            var acc: f32 = 0.0;
            for (var q: i32 = 0; q < 16; q = q + 1) { acc = acc + t12[r * 16 + q] * t2[q * 8 + s]; }
            tmp[r * 8 + s] = acc;
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 8; s = s + 1) {
            t13[r * 8 + s] = tmp[r * 8 + s];
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 1; s = s + 1) {
            t14[r * 1 + s] = select(exp(min(t5[r * 1 + 0], 0.0)), 0.0, t5[r * 1 + 0] < -87.0);
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            t15[r * 16 + s] = (t0[r * 16 + s] * t14[r * 1 + 0]);
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            t28[r * 16 + s] = select(0.0, 1.0, (s < r));
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 1; s = s + 1) {
            var acc: f32 = 0.0;
            for (var q: i32 = 0; q < 16; q = q + 1) { acc = acc + t28[q * 16 + r] * t3[q * 1 + s]; }
            tmp[r * 1 + s] = acc;
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 1; s = s + 1) {
            t16[r * 1 + s] = tmp[r * 1 + s];
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 1; s = s + 1) {
            t17[r * 1 + s] = select(exp(min(t16[r * 1 + 0], 0.0)), 0.0, t16[r * 1 + 0] < -87.0);
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            t18[r * 16 + s] = (t1[r * 16 + s] * t17[r * 1 + 0]);
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 8; s = s + 1) {
            var acc: f32 = 0.0;
            for (var q: i32 = 0; q < 16; q = q + 1) { acc = acc + t18[q * 16 + r] * t2[q * 8 + s]; }
            tmp[r * 8 + s] = acc;
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 8; s = s + 1) {
            t19[r * 8 + s] = tmp[r * 8 + s];
        }
    }
    for (var r: i32 = 0; r < 1; r = r + 1) {
        for (var s: i32 = 0; s < 1; s = s + 1) {
            t20[r * 1 + s] = select(exp(min(t6[0 * 1 + 0], 0.0)), 0.0, t6[0 * 1 + 0] < -87.0);
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 8; s = s + 1) {
            let c0: i32 = v0;
            let c1: i32 = ((v2 * (16)) + r);
            let c2: i32 = v1;
            let c3: i32 = s;
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 8) { b5[((((0) * sizes[0] + c0) * sizes[1] + c1) * sizes[2] + c2) * 8 + c3] = t13[r * 8 + s]; }
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            let c0: i32 = v0;
            let c1: i32 = ((v2 * (16)) + r);
            let c2: i32 = v1;
            let c3: i32 = s;
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 16) { b6[((((0) * sizes[0] + c0) * sizes[1] + c1) * sizes[2] + c2) * 16 + c3] = t15[r * 16 + s]; }
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 8; s = s + 1) {
            let c0: i32 = v0;
            let c1: i32 = v1;
            let c2: i32 = v2;
            let c3: i32 = r;
            let c4: i32 = s;
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[6] && c3 >= 0 && c3 < 16 && c4 >= 0 && c4 < 8) { b7[(((((0) * sizes[0] + c0) * sizes[2] + c1) * sizes[6] + c2) * 16 + c3) * 8 + c4] = t19[r * 8 + s]; }
        }
    }
    for (var r: i32 = 0; r < 1; r = r + 1) {
        for (var s: i32 = 0; s < 1; s = s + 1) {
            let c0: i32 = v0;
            let c1: i32 = v1;
            let c2: i32 = v2;
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[6]) { b8[(((0) * sizes[0] + c0) * sizes[2] + c1) * sizes[6] + c2] = t20[r * 1 + s]; }
        }
    }
}

// kernel `level_scan` of `loglinear_mamba2.forward` (loglinear-wgsl)
@group(0) @binding(0) var<storage, read> sizes: array<i32, 12>;
// buffer `cw` ["B", "H", "NT", "16", "8"]
@group(0) @binding(1) var<storage, read_write> b7: array<f32>;
// buffer `dec` ["B", "H", "NT"]
@group(0) @binding(2) var<storage, read_write> b8: array<f32>;
// buffer `hs` ["B", "H", "M", "NT", "16", "8"]
@group(0) @binding(3) var<storage, read_write> b9: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    var p: i32 = i32(gid.x + gid.y * nwg.x * 64u);
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
    var t0: array<f32, 128>;
    var t1: array<f32, 1>;
    var t2: array<f32, 128>;
    var tmp: array<f32, 128>;
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 8; s = s + 1) {
            t0[r * 8 + s] = 0.0;
        }
    }
    for (v3 = 0; v3 < sizes[6]; v3 = v3 + 1) {
        if ((((v3 >> u32(v2)) & 1) != 0)) {
            for (var r: i32 = 0; r < 16; r = r + 1) {
                for (var s: i32 = 0; s < 8; s = s + 1) {
                    let c0: i32 = v0;
                    let c1: i32 = v1;
                    let c2: i32 = v2;
                    let c3: i32 = v3;
                    let c4: i32 = r;
                    let c5: i32 = s;
                    if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[8] && c3 >= 0 && c3 < sizes[6] && c4 >= 0 && c4 < 16 && c5 >= 0 && c5 < 8) { b9[((((((0) * sizes[0] + c0) * sizes[2] + c1) * sizes[8] + c2) * sizes[6] + c3) * 16 + c4) * 8 + c5] = t0[r * 8 + s]; }
                }
            }
        }
        if (((v3 & ((1 << u32((v2 + (1)))) - 1)) == ((1 << u32((v2 + (1)))) - 1))) {
            for (var r: i32 = 0; r < 16; r = r + 1) {
                for (var s: i32 = 0; s < 8; s = s + 1) {
                    t0[r * 8 + s] = 0.0;
                }
            }
        } else {
            for (var r: i32 = 0; r < 1; r = r + 1) {
                for (var s: i32 = 0; s < 1; s = s + 1) {
                    let c0: i32 = v0;
                    let c1: i32 = v1;
                    let c2: i32 = v3;
                    if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[6]) { t1[r * 1 + s] = b8[(((0) * sizes[0] + c0) * sizes[2] + c1) * sizes[6] + c2]; } else { t1[r * 1 + s] = 0.0; }
                }
            }
            for (var r: i32 = 0; r < 16; r = r + 1) {
                for (var s: i32 = 0; s < 8; s = s + 1) {
                    t0[r * 8 + s] = (t0[r * 8 + s] * t1[0 * 1 + 0]);
                }
            }
        }
        if ((!(((v3 >> u32(v2)) & 1) != 0))) {
            for (var r: i32 = 0; r < 16; r = r + 1) {
                for (var s: i32 = 0; s < 8; s = s + 1) {
                    let c0: i32 = v0;
                    let c1: i32 = v1;
                    let c2: i32 = v3;
                    let c3: i32 = r;
                    let c4: i32 = s;
                    if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[6] && c3 >= 0 && c3 < 16 && c4 >= 0 && c4 < 8) { t2[r * 8 + s] = b7[(((((0) * sizes[0] + c0) * sizes[2] + c1) * sizes[6] + c2) * 16 + c3) * 8 + c4]; } else { t2[r * 8 + s] = 0.0; }
                }
            }
            for (var r: i32 = 0; r < 16; r = r + 1) {
                for (var s: i32 = 0; s < 8; s = s + 1) {
                    t0[r * 8 + s] = (t0[r * 8 + s] + t2[r * 8 + s]);
                }
            }
        }
    }
}

// kernel `level_read` of `loglinear_mamba2.forward` (loglinear-wgsl)
@group(0) @binding(0) var<storage, read> sizes: array<i32, 12>;
// buffer `lam` ["B", "T", "H", "L"]
@group(0) @binding(1) var<storage, read> b4: array<f32>;
// buffer `o` ["B", "T", "H", "8"]
@group(0) @binding(2) var<storage, read_write> b5: array<f32>;
// buffer `qt` ["B", "T", "H", "16"]
@group(0) @binding(3) var<storage, read_write> b6: array<f32>;
// buffer `hs` ["B", "H", "M", "NT", "16", "8"]
@group(0) @binding(4) var<storage, read_write> b9: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    var p: i32 = i32(gid.x + gid.y * nwg.x * 64u);
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
    var t0: array<f32, 128>;
    var t1: array<f32, 256>;
    var t2: array<f32, 512>;
    var t3: array<f32, 128>;
    var t4: array<f32, 128>;
    var t5: array<f32, 16>;
    var t6: array<f32, 128>;
    var t7: array<f32, 512>;
    var tmp: array<f32, 512>;
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 8; s = s + 1) {
            let c0: i32 = v0;
            let c1: i32 = ((v2 * (16)) + r);
            let c2: i32 = v1;
            let c3: i32 = s;
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 8) { t0[r * 8 + s] = b5[((((0) * sizes[0] + c0) * sizes[1] + c1) * sizes[2] + c2) * 8 + c3]; } else { t0[r * 8 + s] = 0.0; }
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 16; s = s + 1) {
            let c0: i32 = v0;
            let c1: i32 = ((v2 * (16)) + r);
            let c2: i32 = v1;
            let c3: i32 = s;
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 16) { t1[r * 16 + s] = b6[((((0) * sizes[0] + c0) * sizes[1] + c1) * sizes[2] + c2) * 16 + c3]; } else { t1[r * 16 + s] = 0.0; }
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 32; s = s + 1) {
            let c0: i32 = v0;
            let c1: i32 = ((v2 * (16)) + r);
            let c2: i32 = v1;
            let c3: i32 = ((0) + s);
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < sizes[5]) { t2[r * 32 + s] = b4[((((0) * sizes[0] + c0) * sizes[1] + c1) * sizes[2] + c2) * sizes[5] + c3]; } else { t2[r * 32 + s] = 0.0; }
        }
    }
    for (v3 = 0; v3 < sizes[8]; v3 = v3 + 1) {
        if ((((v2 >> u32(v3)) & 1) != 0)) {
            for (var r: i32 = 0; r < 16; r = r + 1) {
                for (var s: i32 = 0; s < 8; s = s + 1) {
                    let c0: i32 = v0;
                    let c1: i32 = v1;
                    let c2: i32 = v3;
                    let c3: i32 = v2;
                    let c4: i32 = r;
                    let c5: i32 = s;
                    if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[8] && c3 >= 0 && c3 < sizes[6] && c4 >= 0 && c4 < 16 && c5 >= 0 && c5 < 8) { t3[r * 8 + s] = b9[((((((0) * sizes[0] + c0) * sizes[2] + c1) * sizes[8] + c2) * sizes[6] + c3) * 16 + c4) * 8 + c5]; } else { t3[r * 8 + s] = 0.0; }
                }
            }
            for (var r: i32 = 0; r < 16; r = r + 1) {
                for (var s: i32 = 0; s < 8; s = s + 1) {
                    var acc: f32 = 0.0;
                    for (var q: i32 = 0; q < 16; q = q + 1) { acc = acc + t1[r * 16 + q] * t3[q * 8 + s]; }
                    tmp[r * 8 + s] = acc;
                }
            }
            for (var r: i32 = 0; r < 16; r = r + 1) {
                for (var s: i32 = 0; s < 8; s = s + 1) {
                    t4[r * 8 + s] = tmp[r * 8 + s];
                }
            }
            for (var r: i32 = 0; r < 16; r = r + 1) {
                for (var s: i32 = 0; s < 32; s = s + 1) {
                    tmp[r * 32 + s] = select(0.0, t2[r * 32 + s], (s == ((5) + v3)));
                }
            }
            for (var r: i32 = 0; r < 16; r = r + 1) {
                for (var s: i32 = 0; s < 32; s = s + 1) {
                    t7[r * 32 + s] = tmp[r * 32 + s];
                }
            }
            for (var o: i32 = 0; o < 16; o = o + 1) {
                var acc: f32 = 0.0;
                for (var q: i32 = 0; q < 32; q = q + 1) { acc = acc + t7[o * 32 + q]; }
                tmp[o] = acc;
            }
            for (var o: i32 = 0; o < 16; o = o + 1) { t5[o] = tmp[o]; }
            for (var r: i32 = 0; r < 16; r = r + 1) {
                for (var s: i32 = 0; s < 8; s = s + 1) {
                    t6[r * 8 + s] = (t4[r * 8 + s] * t5[r * 1 + 0]);
                }
            }
            for (var r: i32 = 0; r < 16; r = r + 1) {
                for (var s: i32 = 0; s < 8; s = s + 1) {
                    t0[r * 8 + s] = (t0[r * 8 + s] + t6[r * 8 + s]);
                }
            }
        }
    }
    for (var r: i32 = 0; r < 16; r = r + 1) {
        for (var s: i32 = 0; s < 8; s = s + 1) {
            let c0: i32 = v0;
            let c1: i32 = ((v2 * (16)) + r);
            let c2: i32 = v1;
            let c3: i32 = s;
            if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 8) { b5[((((0) * sizes[0] + c0) * sizes[1] + c1) * sizes[2] + c2) * 8 + c3] = t0[r * 8 + s]; }
        }
    }
}

// kernel `final_state` of `loglinear_mamba2.forward` (loglinear-wgsl)
@group(0) @binding(0) var<storage, read> sizes: array<i32, 12>;
// buffer `k` ["B", "T", "H", "16"]
@group(0) @binding(1) var<storage, read> b1: array<f32>;
// buffer `v` ["B", "T", "H", "8"]
@group(0) @binding(2) var<storage, read> b2: array<f32>;
// buffer `g` ["B", "T", "H"]
@group(0) @binding(3) var<storage, read> b3: array<f32>;
// buffer `dec` ["B", "H", "NT"]
@group(0) @binding(4) var<storage, read_write> b8: array<f32>;
// buffer `hs` ["B", "H", "M", "NT", "16", "8"]
@group(0) @binding(5) var<storage, read_write> b9: array<f32>;
// buffer `state` ["B", "H", "LC", "16", "8"]
@group(0) @binding(6) var<storage, read_write> b10: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    var p: i32 = i32(gid.x + gid.y * nwg.x * 64u);
    if (p >= sizes[0] * sizes[2] * sizes[10]) { return; }
    var v0: i32 = 0;
    var v1: i32 = 0;
    var v2: i32 = 0;
    var v3: i32 = 0;
    v2 = p % sizes[10];
    p = p / sizes[10];
    v1 = p % sizes[2];
    p = p / sizes[2];
    v0 = p % sizes[0];
    p = p / sizes[0];
    var t0: array<f32, 128>;
    var t1: array<f32, 128>;
    var t2: array<f32, 1>;
    var t3: array<f32, 256>;
    var t4: array<f32, 128>;
    var t5: array<f32, 16>;
    var t6: array<f32, 256>;
    var t7: array<f32, 16>;
    var t8: array<f32, 16>;
    var t9: array<f32, 128>;
    var t10: array<f32, 16>;
    var t11: array<f32, 16>;
    var t12: array<f32, 256>;
    var t13: array<f32, 128>;
    var t14: array<f32, 256>;
    var t15: array<f32, 256>;
    var t16: array<f32, 256>;
    var tmp: array<f32, 256>;
    if ((v2 >= (5))) {
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 8; s = s + 1) {
                t0[r * 8 + s] = 0.0;
            }
        }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 8; s = s + 1) {
                let c0: i32 = v0;
                let c1: i32 = v1;
                let c2: i32 = v2;
                let c3: i32 = r;
                let c4: i32 = s;
                if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[10] && c3 >= 0 && c3 < 16 && c4 >= 0 && c4 < 8) { b10[(((((0) * sizes[0] + c0) * sizes[2] + c1) * sizes[10] + c2) * 16 + c3) * 8 + c4] = t0[r * 8 + s]; }
            }
        }
        for (v3 = 0; v3 < sizes[8]; v3 = v3 + 1) {
            if (((v2 >= (v3 + (5))) && ((!(v2 >= (v3 + (6)))) && ((((sizes[6] + (-1)) >> u32(v3)) & 1) != 0)))) {
                for (var r: i32 = 0; r < 16; r = r + 1) {
                    for (var s: i32 = 0; s < 8; s = s + 1) {
                        let c0: i32 = v0;
                        let c1: i32 = v1;
                        let c2: i32 = v3;
                        let c3: i32 = (sizes[6] + (-1));
                        let c4: i32 = r;
                        let c5: i32 = s;
                        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[8] && c3 >= 0 && c3 < sizes[6] && c4 >= 0 && c4 < 16 && c5 >= 0 && c5 < 8) { t1[r * 8 + s] = b9[((((((0) * sizes[0] + c0) * sizes[2] + c1) * sizes[8] + c2) * sizes[6] + c3) * 16 + c4) * 8 + c5]; } else { t1[r * 8 + s] = 0.0; }
                    }
                }
                for (var r: i32 = 0; r < 1; r = r + 1) {
                    for (var s: i32 = 0; s < 1; s = s + 1) {
                        let c0: i32 = v0;
                        let c1: i32 = v1;
                        let c2: i32 = (sizes[6] + (-1));
                        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[6]) { t2[r * 1 + s] = b8[(((0) * sizes[0] + c0) * sizes[2] + c1) * sizes[6] + c2]; } else { t2[r * 1 + s] = 0.0; }
                    }
                }
                for (var r: i32 = 0; r < 16; r = r + 1) {
                    for (var s: i32 = 0; s < 8; s = s + 1) {
                        t1[r * 8 + s] = (t1[r * 8 + s] * t2[0 * 1 + 0]);
                    }
                }
                for (var r: i32 = 0; r < 16; r = r + 1) {
                    for (var s: i32 = 0; s < 8; s = s + 1) {
                        let c0: i32 = v0;
                        let c1: i32 = v1;
                        let c2: i32 = v2;
                        let c3: i32 = r;
                        let c4: i32 = s;
                        if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[10] && c3 >= 0 && c3 < 16 && c4 >= 0 && c4 < 8) { b10[(((((0) * sizes[0] + c0) * sizes[2] + c1) * sizes[10] + c2) * 16 + c3) * 8 + c4] = t1[r * 8 + s]; }
                    }
                }
            }
        }
    } else {
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 16; s = s + 1) {
                let c0: i32 = v0;
                let c1: i32 = (((sizes[6] + (-1)) * (16)) + r);
                let c2: i32 = v1;
                let c3: i32 = s;
                if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 16) { t3[r * 16 + s] = b1[((((0) * sizes[0] + c0) * sizes[1] + c1) * sizes[2] + c2) * 16 + c3]; } else { t3[r * 16 + s] = 0.0; }
            }
        }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 8; s = s + 1) {
                let c0: i32 = v0;
                let c1: i32 = (((sizes[6] + (-1)) * (16)) + r);
                let c2: i32 = v1;
                let c3: i32 = s;
                if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2] && c3 >= 0 && c3 < 8) { t4[r * 8 + s] = b2[((((0) * sizes[0] + c0) * sizes[1] + c1) * sizes[2] + c2) * 8 + c3]; } else { t4[r * 8 + s] = 0.0; }
            }
        }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 1; s = s + 1) {
                let c0: i32 = v0;
                let c1: i32 = (((sizes[6] + (-1)) * (16)) + r);
                let c2: i32 = v1;
                if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[1] && c2 >= 0 && c2 < sizes[2]) { t5[r * 1 + s] = b3[(((0) * sizes[0] + c0) * sizes[1] + c1) * sizes[2] + c2]; } else { t5[r * 1 + s] = 0.0; }
            }
        }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 16; s = s + 1) {
                t6[r * 16 + s] = select(0.0, 1.0, ((s <= r) && (32 - i32(countLeadingZeros(r ^ s)) == v2)));
            }
        }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 16; s = s + 1) {
                tmp[r * 16 + s] = select(0.0, t6[r * 16 + s], (r == ((sizes[1] + (-1)) + ((-1) * ((sizes[6] + (-1)) * (16))))));
            }
        }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 16; s = s + 1) {
                t14[r * 16 + s] = tmp[r * 16 + s];
            }
        }
        for (var o: i32 = 0; o < 16; o = o + 1) {
            var acc: f32 = 0.0;
            for (var q: i32 = 0; q < 16; q = q + 1) { acc = acc + t14[q * 16 + o]; }
            tmp[o] = acc;
        }
        for (var o: i32 = 0; o < 16; o = o + 1) { t7[o] = tmp[o]; }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 16; s = s + 1) {
                tmp[r * 16 + s] = select(0.0, t7[0 * 16 + s], (s == r));
            }
        }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 16; s = s + 1) {
                t15[r * 16 + s] = tmp[r * 16 + s];
            }
        }
        for (var o: i32 = 0; o < 16; o = o + 1) {
            var acc: f32 = 0.0;
            for (var q: i32 = 0; q < 16; q = q + 1) { acc = acc + t15[o * 16 + q]; }
            tmp[o] = acc;
        }
        for (var o: i32 = 0; o < 16; o = o + 1) { t8[o] = tmp[o]; }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 8; s = s + 1) {
                t9[r * 8 + s] = (t4[r * 8 + s] * t8[r * 1 + 0]);
            }
        }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 16; s = s + 1) {
                t16[r * 16 + s] = select(0.0, 1.0, (s < r));
            }
        }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 1; s = s + 1) {
                var acc: f32 = 0.0;
                for (var q: i32 = 0; q < 16; q = q + 1) { acc = acc + t16[q * 16 + r] * t5[q * 1 + s]; }
                tmp[r * 1 + s] = acc;
            }
        }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 1; s = s + 1) {
                t10[r * 1 + s] = tmp[r * 1 + s];
            }
        }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 1; s = s + 1) {
                t11[r * 1 + s] = select(exp(min(t10[r * 1 + 0], 0.0)), 0.0, t10[r * 1 + 0] < -87.0);
            }
        }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 16; s = s + 1) {
                t12[r * 16 + s] = (t3[r * 16 + s] * t11[r * 1 + 0]);
            }
        }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 8; s = s + 1) {
                var acc: f32 = 0.0;
                for (var q: i32 = 0; q < 16; q = q + 1) { acc = acc + t12[q * 16 + r] * t9[q * 8 + s]; }
                tmp[r * 8 + s] = acc;
            }
        }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 8; s = s + 1) {
                t13[r * 8 + s] = tmp[r * 8 + s];
            }
        }
        for (var r: i32 = 0; r < 16; r = r + 1) {
            for (var s: i32 = 0; s < 8; s = s + 1) {
                let c0: i32 = v0;
                let c1: i32 = v1;
                let c2: i32 = v2;
                let c3: i32 = r;
                let c4: i32 = s;
                if (c0 >= 0 && c0 < sizes[0] && c1 >= 0 && c1 < sizes[2] && c2 >= 0 && c2 < sizes[10] && c3 >= 0 && c3 < 16 && c4 >= 0 && c4 < 8) { b10[(((((0) * sizes[0] + c0) * sizes[2] + c1) * sizes[10] + c2) * 16 + c3) * 8 + c4] = t13[r * 8 + s]; }
            }
        }
    }
}

