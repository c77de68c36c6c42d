/** The OpenID Provider as the sharing API uses it: token checks and grant revocation. */
import type { TandemOidc } from '../oidc/provider.js';
import type { ApiAuth } from './server.js';

// Every oidc-provider model that hangs off a grant: revoking a login leaves none of them usable.
const GRANT_MODELS = [
  'AccessToken',
  'RefreshToken',
  'AuthorizationCode',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
] as const;

interface ModelWithAdapter {
  readonly adapter?: { revokeByGrantId?(grantId: string): Promise<void> };
}

/** {@link ApiAuth} over a running provider. */
export function oidcAuth(oidc: TandemOidc): ApiAuth {
  return {
    verifyAccessToken: (token) => oidc.verifyAccessToken(token),
    async revokeGrant(grantId) {
      const models = oidc.provider as unknown as Record<string, ModelWithAdapter | undefined>;
      for (const name of GRANT_MODELS) await models[name]?.adapter?.revokeByGrantId?.(grantId);
      // The grant itself last: verifyAccessToken refuses every token whose grant is gone.
      const grant = await oidc.provider.Grant.find(grantId);
      await grant?.destroy();
    },
  };
}
