use loglinear_macros::log_linear;

#[log_linear(crate = ::loglinear_ir)]
fn mamba2(q: Key, k: Key, v: Value, g: Scalar, lam: Levels) {
    query(q);
    transition(exp(g) * I);
    write(outer(k, v));
}

fn main() {}
