use loglinear_macros::log_linear;

#[log_linear(crate = ::loglinear_ir)]
fn bad(q: Key, v: Value) {
    query(q);
    write(outer(v, v));
}

fn main() {}
