use super::*;

struct Fixture {
    auth: Authenticator,
    path: PathBuf,
    creds: Vec<NewCredentials>,
}

fn config(path: &std::path::Path) -> AuthConfig {
    eye_runtime::config::from_iter::<AuthConfig>([
        (
            "EYE_AUTH_CLIENTS_FILE".to_owned(),
            path.display().to_string(),
        ),
        ("EYE_AUTH_TOKEN_SECRET".to_owned(), "k".repeat(32)),
        ("EYE_AUTH_REQUESTS_PER_S".to_owned(), "1".to_owned()),
        ("EYE_AUTH_REQUESTS_BURST".to_owned(), "3".to_owned()),
    ])
    .expect("config")
}

fn record(c: &NewCredentials, scopes: &[Scope]) -> ClientRecord {
    c.record(&format!("client {}", c.id), scopes.to_vec())
}

fn fixture(name: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("eye-auth-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("clients.toml");
    let creds: Vec<NewCredentials> = (0..3)
        .map(|_| NewCredentials::generate().expect("random"))
        .collect();
    let mut writer = record(&creds[0], &[Scope::EventsWrite]);
    writer.categories = Some(vec!["page_interaction".into()]);
    writer.unknown_types = Some(eye_model::schema::UnknownTypePolicy::Accept);
    let reader = record(&creds[1], &[Scope::EventsRead, Scope::AggregationsRead]);
    let mut revoked = record(&creds[2], &[Scope::Admin]);
    revoked.revoked_at = Some("2026-11-25T01:00:00Z".into());
    ClientsFile {
        clients: vec![writer, reader, revoked],
    }
    .save(&path)
    .expect("save");
    let auth = Authenticator::load(&config(&path)).expect("load");
    Fixture { auth, path, creds }
}

fn bearer(s: &str) -> String {
    format!("Bearer {s}")
}

#[test]
fn api_keys_authenticate_by_id_and_secret() {
    let f = fixture("keys");
    let (w, r, revoked) = (&f.creds[0], &f.creds[1], &f.creds[2]);
    let p = f
        .auth
        .authenticate(Some(&bearer(&w.api_key())))
        .expect("valid");
    assert_eq!(p.client_id, w.id);
    assert!(p.has(Scope::EventsWrite) && !p.has(Scope::EventsRead));
    assert!(p.may_write("page_interaction") && !p.may_write("machine"));
    let p = f
        .auth
        .authenticate(Some(&format!("bearer  {}", r.api_key())))
        .expect("valid");
    assert!(p.has_any(&[Scope::AggregationsRead]) && !p.has(Scope::EventsWrite));
    assert!(p.may_write("anything"));
    // (header, error)
    let wrong_secret = format!("eye_{}.{}", w.id, r.secret);
    let cases = [
        (None, AuthError::Missing),
        (Some("Basic abc".to_owned()), AuthError::Malformed),
        (Some("Bearer".to_owned()), AuthError::Malformed),
        (Some("Bearer ".to_owned()), AuthError::Malformed),
        (Some(bearer(&wrong_secret)), AuthError::Invalid),
        (Some(bearer("eye_0000000000000000.00")), AuthError::Invalid),
        (Some(bearer(&revoked.api_key())), AuthError::Invalid),
        (Some(bearer("not.a.token")), AuthError::Invalid),
    ];
    for (header, want) in cases {
        assert_eq!(
            f.auth.authenticate(header.as_deref()).map(|p| p.client_id),
            Err(want),
            "{header:?}"
        );
    }
}

#[test]
fn bare_api_keys_are_write_keys_and_tokens_are_not() {
    use eye_model::schema::UnknownTypePolicy;
    let f = fixture("write-keys");
    let (w, r, revoked) = (&f.creds[0], &f.creds[1], &f.creds[2]);
    let p = f.auth.authenticate_api_key(&w.api_key()).expect("valid");
    assert_eq!(p.client_id, w.id);
    assert_eq!(p.unknown_types, Some(UnknownTypePolicy::Accept));
    let p = f.auth.authenticate_api_key(&r.api_key()).expect("valid");
    assert_eq!(p.unknown_types, None);
    let token = f
        .auth
        .issue_token(&w.id, &w.secret, None)
        .expect("token")
        .access_token;
    let cases: [(&str, AuthError); 6] = [
        ("", AuthError::Missing),
        ("  ", AuthError::Missing),
        (&token, AuthError::Invalid),
        (&revoked.api_key(), AuthError::Invalid),
        ("eye_0000000000000000.00", AuthError::Invalid),
        (&w.secret, AuthError::Invalid),
    ];
    for (i, (key, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            f.auth.authenticate_api_key(key).err(),
            Some(want),
            "case {i}"
        );
    }
}

#[test]
fn tokens_carry_granted_scopes_and_follow_the_client() {
    let f = fixture("tokens");
    let r = &f.creds[1];
    let all = f.auth.issue_token(&r.id, &r.secret, None).expect("token");
    assert_eq!(all.scope, "events:read aggregations:read");
    assert_eq!((all.token_type, all.expires_in), ("Bearer", 900));
    let shown = format!("{all:?}");
    assert!(!shown.contains(&all.access_token), "{shown}");
    let p = f
        .auth
        .authenticate(Some(&bearer(&all.access_token)))
        .expect("valid");
    assert_eq!((p.via, p.client_id.as_str()), (Via::Token, r.id.as_str()));
    // The short OAuth2 scope names; a narrower grant.
    let narrow = f
        .auth
        .issue_token(&r.id, &r.secret, Some("read"))
        .expect("token");
    let p = f
        .auth
        .authenticate(Some(&bearer(&narrow.access_token)))
        .expect("valid");
    assert!(p.has(Scope::EventsRead) && !p.has(Scope::AggregationsRead));
    assert_eq!(
        f.auth
            .issue_token(&r.id, &r.secret, Some("write"))
            .map(|t| t.scope),
        Err(TokenError::InvalidScope("write".into()))
    );
    assert_eq!(
        f.auth.issue_token(&r.id, "wrong", None).map(|t| t.scope),
        Err(TokenError::InvalidClient)
    );
    let revoked = &f.creds[2];
    assert_eq!(
        f.auth
            .issue_token(&revoked.id, &revoked.secret, None)
            .map(|t| t.scope),
        Err(TokenError::InvalidClient)
    );
    // A tampered token fails; one signed with another key fails.
    let mut tampered = all.access_token.clone();
    tampered.pop();
    assert_eq!(
        f.auth
            .authenticate(Some(&bearer(&tampered)))
            .map(|p| p.client_id),
        Err(AuthError::Invalid)
    );
    // Revoking the client ends its tokens at the next reload.
    let mut file = ClientsFile::load(&f.path).expect("load");
    file.clients[1].revoked_at = Some("now".into());
    std::thread::sleep(Duration::from_millis(20));
    file.save(&f.path).expect("save");
    assert_eq!(f.auth.reload_if_changed().ok(), Some(true));
    assert_eq!(
        f.auth
            .authenticate(Some(&bearer(&all.access_token)))
            .map(|p| p.client_id),
        Err(AuthError::Invalid)
    );
}

#[test]
fn expired_tokens_are_refused_as_expired() {
    let f = fixture("expired");
    let r = &f.creds[1];
    let claims = Claims {
        iss: ISSUER.into(),
        sub: r.id.clone(),
        scope: "events:read".into(),
        iat: 1,
        exp: 2,
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret("k".repeat(32).as_bytes()).expect("key"),
    )
    .expect("encode");
    assert_eq!(
        f.auth
            .authenticate(Some(&bearer(&token)))
            .map(|p| p.client_id),
        Err(AuthError::Expired)
    );
}

#[tokio::test]
async fn buckets_throttle_and_refill() {
    let f = fixture("limits");
    let p = f
        .auth
        .authenticate(Some(&bearer(&f.creds[1].api_key())))
        .expect("valid");
    // Burst 3 at 1 request/s: the fourth is refused with a wait of about a second.
    for _ in 0..3 {
        p.admit_request().await.expect("within the burst");
    }
    let e = p.admit_request().await.expect_err("over the burst");
    assert_eq!(e.retry_after_secs(), Some(1));
    // The same client authenticated again shares the bucket.
    let again = f
        .auth
        .authenticate(Some(&bearer(&f.creds[1].api_key())))
        .expect("valid");
    assert!(again.admit_request().await.is_err());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    again.admit_request().await.expect("refilled");
    // Events: default burst 100,000; a batch bigger than the burst can never pass.
    p.admit_events(1_000).await.expect("events");
    assert_eq!(
        p.admit_events(200_000).await,
        Err(AuthError::BatchOverBurst(100_000))
    );
    // Within the burst but over what is left: a wait, not a refusal for good.
    assert!(matches!(
        p.admit_events(100_000).await,
        Err(AuthError::RateLimited {
            limit: "events",
            ..
        })
    ));
}
