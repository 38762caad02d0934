use loglinear_macros::log_linear;

#[log_linear(crate = ::loglinear_ir)]
fn mamba2(q: Key, k: Key, v: Value, g: Scalar) {
    query(q);
    transition(exp(gamma) * I);
    write(outer(k, v));
}

fn main() {}
