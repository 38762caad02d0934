use loglinear_macros::log_linear;

#[log_linear(crate = ::loglinear_ir)]
fn bad(q: Key, k: Key, v: Value, k: Key) {
    query(q);
    write(outer(k, v));
}

fn main() {}
