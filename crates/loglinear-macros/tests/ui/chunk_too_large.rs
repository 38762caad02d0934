use loglinear_macros::log_linear;

#[log_linear(chunk = 512, crate = ::loglinear_ir)]
fn la(q: Key, k: Key, v: Value) {
    query(q);
    write(outer(k, v));
}

fn main() {}
