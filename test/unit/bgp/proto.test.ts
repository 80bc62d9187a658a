import { describe, expect, it } from 'vitest';
import { FAMILY_IPV4, TYPE, type PathMsg } from '../../../src/bgp/messages.js';
import { encodePaths, joinEncoded, loadGobgpService, protoDir } from '../../../src/bgp/proto.js';

const withdrawal = (prefix: string): PathMsg => ({
  family: FAMILY_IPV4,
  nlri: { '@type': TYPE.prefix, prefix, prefix_len: 32 },
  pattrs: [
    { '@type': TYPE.origin, origin: 0 },
    { '@type': TYPE.nextHop, next_hop: '192.0.2.10' },
  ],
  is_withdraw: true,
});

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

  it('let AddPathStream send a request encoded ahead as it is, and joined requests carry all their paths', () => {
    const m = loadGobgpService().service.AddPathStream!;
    const a = encodePaths([withdrawal('198.51.100.1')]);
    expect(m.requestSerialize(a)).toBe(a);
    // Encoded ahead or at the write: the same bytes.
    expect(m.requestSerialize({ table_type: 'GLOBAL', paths: [withdrawal('198.51.100.1')] })).toEqual(a);
    const joined = m.requestDeserialize(joinEncoded([a, encodePaths([withdrawal('198.51.100.2')])])) as { table_type: string; paths: { nlri: { prefix: string }; is_withdraw: boolean }[] };
    expect(joined.table_type).toBe('GLOBAL');
    expect(joined.paths.map((p) => [p.nlri.prefix, p.is_withdraw])).toEqual([
      ['198.51.100.1', true],
      ['198.51.100.2', true],
    ]);
  });

  it('are reported missing with the directory and the way to get them', () => {
    expect(() => loadGobgpService('/nonexistent/api')).toThrow(/gobgpd API protos not found in \/nonexistent\/api \(missing gobgp\.proto, attribute\.proto, capability\.proto\); run scripts\/deps\.sh or set VIPD_GOBGP_PROTO_DIR/);
  });
});
