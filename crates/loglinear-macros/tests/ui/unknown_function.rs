use loglinear_macros::log_linear;

#[log_linear(crate = ::loglinear_ir)]
fn la(q: Key, k: Key, v: Value) {
    query(tanh(q));
    write(outer(k, v));
}

fn main() {}
