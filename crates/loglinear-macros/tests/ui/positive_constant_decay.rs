use loglinear_macros::log_linear;

#[log_linear(crate = ::loglinear_ir)]
fn bad(q: Key, k: Key, v: Value) {
    query(q);
    transition(exp(0.5) * I);
    write(outer(k, v));
}

fn main() {}
