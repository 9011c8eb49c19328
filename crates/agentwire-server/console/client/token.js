// Reading a JWT's `exp` to refresh before it passes. The client never verifies a token (the
// server does); it only reads when it expires.
/** The `exp` claim of a compact JWT, in ms since the epoch, or `undefined` when it has none
 * or is not readable. */
export function tokenExpiry(token) {
    const part = token.split(".")[1];
    if (part === undefined)
        return undefined;
    try {
        const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
        const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
        const binary = atob(padded);
        const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
        const claims = JSON.parse(new TextDecoder().decode(bytes));
        if (claims !== null && typeof claims === "object" && "exp" in claims) {
            const exp = claims.exp;
            if (typeof exp === "number" && Number.isFinite(exp))
                return exp * 1000;
        }
    }
    catch {
        // Not a readable JWT: no refresh is scheduled; the server says what is wrong with it.
    }
    return undefined;
}
