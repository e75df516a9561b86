/* auth.c -- etcd authentication: get a token with Auth/Authenticate and refresh it when etcd
 * says it is invalid (expired, or from another member whose auth store is older). */
#include "etcd/internal.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool etcd_auth_needed(etcd_client *c)
{
    return c->username != NULL;
}

bool etcd_auth_error(int code, const char *details)
{
    if (code == GRPC_STATUS_UNAUTHENTICATED)
        return strstr(details, "invalid auth token") != NULL;
    if (code == GRPC_STATUS_INVALID_ARGUMENT)
        return strstr(details, "revision of auth store is old") != NULL ||
               strstr(details, "user name is empty") != NULL;
    return false;
}

/* Authenticate and store the token. Called with auth_mu held. */
static int authenticate(etcd_client *c, etcd_error *err)
{
    Etcdserverpb__AuthenticateRequest req = ETCDSERVERPB__AUTHENTICATE_REQUEST__INIT;
    req.name = c->username;
    req.password = c->password;
    size_t len = etcdserverpb__authenticate_request__get_packed_size(&req), resp_len = 0;
    uint8_t *buf = malloc(len ? len : 1), *resp = NULL;
    if (!buf)
        return -ENOMEM;
    etcdserverpb__authenticate_request__pack(&req, buf);
    int rc = etcd_unary(c, "/etcdserverpb.Auth/Authenticate", buf, len, ETCD_RETRY_ALWAYS,
                        false, &resp, &resp_len, err);
    free(buf);
    if (rc < 0)
        return rc;
    Etcdserverpb__AuthenticateResponse *r =
        etcdserverpb__authenticate_response__unpack(NULL, resp_len, resp);
    free(resp);
    if (!r || !r->token || !*r->token) {
        etcdserverpb__authenticate_response__free_unpacked(r, NULL);
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "bad Authenticate response");
        return -EPROTO;
    }
    char *tok = strdup(r->token);
    etcdserverpb__authenticate_response__free_unpacked(r, NULL);
    if (!tok)
        return -ENOMEM;
    pthread_mutex_lock(&c->mu);
    free(c->token);
    c->token = tok;
    c->token_gen++;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

int etcd_auth_refresh(etcd_client *c, uint64_t seen_gen, etcd_error *err)
{
    pthread_mutex_lock(&c->auth_mu);
    pthread_mutex_lock(&c->mu);
    bool fresh = c->token_gen != seen_gen;
    pthread_mutex_unlock(&c->mu);
    int rc = fresh ? 0 : authenticate(c, err);
    pthread_mutex_unlock(&c->auth_mu);
    return rc;
}
