//! Uploads through the router, on both backends: the raw archive and a multipart form with the
//! same archive are one package; bad forms, media types and sizes are refused with the reason;
//! a server that requires signed packages takes only archives signed by a key it trusts.

use super::*;

fn example_archive() -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/packages/simple-packaged");
    cloacina::packages::source::pack(&root).unwrap().1
}

async fn upload(app: &Router, media: &str, body: Vec<u8>) -> (StatusCode, Value) {
    signed_upload(app, media, body, None).await
}

async fn signed_upload(app: &Router, media: &str, body: Vec<u8>, signature: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method("POST")
        .uri("/api/v1/packages")
        .header("host", "127.0.0.1:8080")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", media);
    if let Some(signature) = signature {
        req = req.header("x-cloacina-signature", signature);
    }
    let response = app.clone().oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn form(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = b"a preamble to ignore\r\n".to_vec();
    for (name, file, content) in parts {
        let file = file.map(|f| format!("; filename=\"{f}\"")).unwrap_or_default();
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n").as_bytes(),
        );
        body.extend(*content);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    body
}

async fn uploads(t: TestDb) {
    let config = ServerConfig { token: Some(TOKEN.to_owned()), ..Default::default() };
    let app = cloacina_server::router(t.open(), config);
    let archive = example_archive();
    let boundary = "----a-boundary-7MA4YWxkTrZu0gW";
    let media = format!("multipart/form-data; boundary=\"{boundary}\"");
    let (s, v) =
        upload(&app, &media, form(boundary, &[("note", None, b"hello"), ("whatever", Some("etl.cloacina"), &archive)]))
            .await;
    assert_eq!((s, &v["created"]), (StatusCode::CREATED, &Value::Bool(true)), "{v}");
    assert_eq!(v["package"]["status"], "uploaded");
    let (s, again) = upload(&app, "application/octet-stream", archive.clone()).await;
    assert_eq!((s, &again["package"]["id"]), (StatusCode::OK, &v["package"]["id"]), "the same archive: {again}");
    let (s, named) = upload(&app, &media, form(boundary, &[("package", None, &archive)])).await;
    assert_eq!(s, StatusCode::OK, "a field named package: {named}");

    let refusals: [(&str, Vec<u8>, StatusCode, &str); 4] = [
        ("multipart/form-data", form(boundary, &[("package", None, &archive)]), StatusCode::BAD_REQUEST, "boundary"),
        (&media, form(boundary, &[("note", None, b"hello")]), StatusCode::BAD_REQUEST, "no file part"),
        (&media, b"--nothing like the boundary".to_vec(), StatusCode::BAD_REQUEST, "has no part"),
        ("text/plain", archive.clone(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/octet-stream"),
    ];
    for (media, body, status, says) in refusals {
        let (s, v) = upload(&app, media, body).await;
        assert_eq!(s, status, "{media}: {v}");
        assert!(v["error"]["message"].as_str().unwrap_or("").contains(says), "{media}: {v}");
    }

    let small = ServerConfig { token: Some(TOKEN.to_owned()), max_package_bytes: 1024, ..Default::default() };
    let (s, v) = upload(&cloacina_server::router(t.open(), small), "application/octet-stream", archive).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
}

both_backends!(uploads_raw_and_multipart, uploads);

async fn signed_uploads(t: TestDb) {
    use cloacina::packages::signing;
    let (private, trusted) = signing::generate().unwrap();
    let (stranger_key, _) = signing::generate().unwrap();
    let config =
        ServerConfig { token: Some(TOKEN.to_owned()), trusted_keys: Some(vec![trusted]), ..Default::default() };
    let app = cloacina_server::router(t.open(), config);
    let archive = example_archive();
    let good = signing::sign(&private, &archive).unwrap();
    let mut tampered = archive.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let by_a_stranger = signing::sign(&stranger_key, &archive).unwrap();
    let media = "application/octet-stream";
    let refusals: [(Vec<u8>, Option<&str>, &str); 4] = [
        (archive.clone(), None, "unsigned"),
        (tampered, Some(&good), "changed after it was signed"),
        (archive.clone(), Some(&by_a_stranger), "does not trust"),
        (archive.clone(), Some("not json"), "not a Cloacina signature"),
    ];
    for (body, signature, why) in refusals {
        let (s, v) = signed_upload(&app, media, body, signature).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_request"), "{why}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(why), "{why}: {v}");
    }
    let (_, listed) = Call::get("/api/v1/packages").send(&app).await;
    assert_eq!(listed["packages"], json!([]), "nothing refused was stored");
    let (s, v) = signed_upload(&app, media, archive, Some(&good)).await;
    assert_eq!((s, &v["package"]["status"]), (StatusCode::CREATED, &json!("uploaded")), "{v}");
}

both_backends!(only_signed_uploads_when_signatures_are_required, signed_uploads);
