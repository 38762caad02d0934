use loglinear_macros::log_linear;

#[log_linear(crate = ::loglinear_ir)]
fn mamba2(q: Key, k: Key, v: Value) {
    query(q);
    transition(exp(v) * I);
    write(outer(k, v));
}

fn main() {}
