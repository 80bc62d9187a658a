import { describe, expect, it } from 'vitest';
import { loadGobgpService, protoDir } from '../../../src/bgp/proto.js';

describe('gobgpd API protos', () => {
  it('are found in $VIPD_GOBGP_PROTO_DIR, else under $VIPD_CACHE', () => {
    expect(protoDir({ VIPD_GOBGP_PROTO_DIR: '/opt/protos' })).toBe('/opt/protos');
    expect(protoDir({ VIPD_CACHE: '/srv/cache' })).toBe('/srv/cache/gobgp-proto/api');
    expect(protoDir({})).toBe('/var/cache/vipd/gobgp-proto/api');
  });

  it('load as the v3 GobgpApi service with every method vipd calls', () => {
    const svc = loadGobgpService().service;
    for (const m of ['GetBgp', 'StartBgp', 'AddPeer', 'DeletePeer', 'ListPeer', 'AddPath', 'AddPathStream', 'DeletePath', 'ListPath', 'WatchEvent']) expect(svc).toHaveProperty(m);
    expect(svc.AddPathStream?.requestStream).toBe(true);
  });

  it('are reported missing with the directory and the way to get them', () => {
    expect(() => loadGobgpService('/nonexistent/api')).toThrow(/gobgpd API protos not found in \/nonexistent\/api \(missing gobgp\.proto, attribute\.proto, capability\.proto\); run scripts\/deps\.sh or set VIPD_GOBGP_PROTO_DIR/);
  });
});
