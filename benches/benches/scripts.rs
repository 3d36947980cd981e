//! Application scripts (QuickJS through rquickjs): what starting one instance's context
//! costs (runtime, the AMS prelude, a small main.asc), and one call into a script method
//! (JSON event in, JSON outcome out), as the script thread does per client call.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use dataplane::scripts::context::{Budget, ScriptContext};
use serde_json::json;

const MAIN: &str = "application.onConnect = function (c) { return c.ip !== undefined; };\n\
                    Client.prototype.add = function (a, b) { return a + b; };\n";

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("strata-bench-scripts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let main = dir.join("main.asc");
    std::fs::write(&main, MAIN).expect("write main.asc");
    let budget = Budget {
        time: Duration::from_secs(1),
        memory: 64 << 20,
    };
    c.bench_function("scripts/context_start", |b| {
        b.iter(|| ScriptContext::load("bench", "_definst_", &dir, &main, budget).expect("loads"))
    });
    let (mut ctx, _) =
        ScriptContext::load("bench", "_definst_", &dir, &main, budget).expect("loads");
    let connect = json!({"type": "connect", "client": {"id": 1, "ip": "127.0.0.1"}, "args": []});
    ctx.dispatch(&connect).expect("connects");
    let call = json!({"type": "call", "client": 1, "method": "add", "args": [2, 3]});
    c.bench_function("scripts/call", |b| {
        b.iter(|| ctx.dispatch(&call).expect("answers"))
    });
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
