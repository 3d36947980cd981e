//! The admin API's shared-object routes (`/api/v1/so/...`, listed in `admin_api`): each maps
//! to one `so` control call, so a backend can change an object that clients see at once.

use crate::admin_api::{control, error, not_allowed, percent_decode, Answer};
use crate::manager::Shared;
use crate::protocol::{Call, SoCall};
use tiny_http::Method;

/// `rest` is the path after `/api/v1/so/`; `body` the request body (PUT's JSON value).
pub(crate) fn route(shared: &Shared, method: &Method, rest: &str, body: Option<&str>) -> Answer {
    let parts: Vec<String> = rest
        .split('/')
        .filter(|p| !p.is_empty())
        .map(percent_decode)
        .collect();
    let call = match (method, parts.as_slice()) {
        (Method::Get, [app, instance]) => SoCall::List {
            app: app.clone(),
            instance: instance.clone(),
        },
        (Method::Get, [app, instance, name]) => SoCall::Get {
            app: app.clone(),
            instance: instance.clone(),
            name: name.clone(),
        },
        (Method::Put, [app, instance, name, slot]) => {
            let Some(body) = body else {
                return error(400, "bad_request", "no readable body (a JSON value)");
            };
            let value = match serde_json::from_str(body) {
                Ok(v) => v,
                Err(e) => return error(400, "bad_request", &format!("body is not JSON: {e}")),
            };
            SoCall::Set {
                app: app.clone(),
                instance: instance.clone(),
                name: name.clone(),
                slot: slot.clone(),
                value,
            }
        }
        (Method::Delete, [app, instance, name, rest @ ..]) if rest.len() <= 1 => SoCall::Delete {
            app: app.clone(),
            instance: instance.clone(),
            name: name.clone(),
            slot: rest.first().cloned(),
        },
        (_, [_, _] | [_, _, _] | [_, _, _, _]) => return not_allowed(),
        _ => {
            return error(
                404,
                "not_found",
                "expected /api/v1/so/{app}/{instance}[/{name}[/{slot}]]",
            )
        }
    };
    control(shared, Call::So(call))
}
