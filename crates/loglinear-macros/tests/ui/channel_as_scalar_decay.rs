use loglinear_macros::log_linear;

#[log_linear(crate = ::loglinear_ir)]
fn gla(q: Key, k: Key, v: Value, g: Channel) {
    query(q);
    transition(exp(g) * I);
    write(outer(k, v));
}

fn main() {}
