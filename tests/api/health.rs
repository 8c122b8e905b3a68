use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body["status"], "ok");
}

#[tokio::test]
async fn readyz_is_ready_with_a_database_and_a_signing_key() {
    let app = spawn_app().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body["status"], "ready");
}

#[tokio::test]
async fn readyz_reports_an_unreachable_database_and_recovers() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    // Make the poll fail the way an unreachable database does.
    app.execute_sql("ALTER TABLE change_marker RENAME TO change_marker_away")
        .await;
    let response = wait_for_status(&app, 503).await;
    assert_eq!(response.body["status"], "not_ready");
    assert_eq!(
        response.body["reasons"],
        serde_json::json!(["database unreachable"])
    );

    // Tokens keep flowing from memory meanwhile.
    let token = app
        .token_with_basic(&client, "grant_type=client_credentials")
        .await;
    assert_eq!(token.status, 200, "{}", token.body);

    app.execute_sql("ALTER TABLE change_marker_away RENAME TO change_marker")
        .await;
    wait_for_status(&app, 200).await;
}

async fn wait_for_status(
    app: &crate::helpers::TestApp,
    status: u16,
) -> crate::helpers::TestResponse {
    for _ in 0..100 {
        let response = app.get("/readyz").await;
        if response.status == status {
            return response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("/readyz never answered {status}");
}

#[tokio::test]
async fn a_reachable_database_keeps_the_outage_grace_from_running_out() {
    let app = crate::helpers::spawn_app_with_env(&[("WARRANT_OUTAGE_GRACE_SECS", "1")]).await;
    let client = app.create_client().await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let token = app
        .token_with_basic(&client, "grant_type=client_credentials")
        .await;
    assert_eq!(token.status, 200, "{}", token.body);
}
