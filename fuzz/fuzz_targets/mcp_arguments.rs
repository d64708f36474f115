//! MCP tool arguments from any bytes: each tool's argument type decodes or refuses, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tokenwarden::mcp::args::{
    CreateAdminArgs, CreateResourceArgs, DeleteArgs, GatedArgs, InstanceArgs, ListTokensArgs,
    PendingArgs,
};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ListTokensArgs>(data);
    let _ = serde_json::from_slice::<InstanceArgs>(data);
    let _ = serde_json::from_slice::<CreateAdminArgs>(data);
    let _ = serde_json::from_slice::<CreateResourceArgs>(data);
    let _ = serde_json::from_slice::<DeleteArgs>(data);
    let _ = serde_json::from_slice::<GatedArgs>(data);
    let _ = serde_json::from_slice::<PendingArgs>(data);
});
