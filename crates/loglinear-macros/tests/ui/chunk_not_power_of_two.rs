use loglinear_macros::log_linear;

#[log_linear(crate = ::loglinear_ir, chunk = 48)]
fn la(q: Key, k: Key, v: Value) {
    query(q);
    write(outer(k, v));
}

fn main() {}
