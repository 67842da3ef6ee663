-- Argo CD health of a CloudAuthorization (thingspace.credops.io): a person's consent for a Verizon Cloud
-- app, then an access token kept valid in a Secret with rotating refresh tokens.
--   Healthy      the Secret holds an unexpired access token.
--   Suspended    nobody has consented yet and a consent is live (status.consentStateHash, its link in the
--                Secret status.consentSecretName names): the object waits for a
--                person, not for the operator, as a paused rollout or a suspended CronJob does (the
--                built-in checks show those Suspended). Progressing would suggest it settles by itself;
--                Degraded would page someone for the normal first step of every CloudAuthorization.
--   Degraded     only a person can fix it: consent refused or failed, the grant died, the app's
--                credentials were rejected, or the configuration cannot be used.
--   Progressing  everything the operator retries by itself.
-- The link is never in status, nor in the message: Argo CD shows it to everyone who can see the app,
-- and only those who may read the consent Secret may consent.
-- Reasons are the constants in api/v1alpha1 (a Go test checks that every reason named here exists).
local hs = {}

local function condition(ctype)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

-- Condition messages carry upstream error text; Argo CD shows one line.
local function short(msg)
  if msg == nil or msg == "" then
    return "Waiting for the operator"
  end
  if string.len(msg) <= 200 then
    return msg
  end
  local cut = string.sub(msg, 1, 197)
  -- End on a word when one ends late enough.
  local space = string.find(cut, " [^ ]*$")
  if space ~= nil and space > 150 then
    cut = string.sub(cut, 1, space - 1)
  end
  return cut .. "..."
end

local function describe(c)
  if c.reason == nil or c.reason == "" then
    return short(c.message)
  end
  return c.reason .. ": " .. short(c.message)
end

-- Authorized=False reasons that need a person again: a consent attempt failed or the grant is gone.
local consentFailed = {
  AccessDenied = true,
  AuthorizationFailed = true,
  CodeExchangeFailed = true,
  ReauthorizationRequired = true,
  CredentialsRejected = true,
}

-- Ready=False reasons the operator does not retry by itself.
local terminal = {
  CredentialsRejected = true,
  SecretConflict = true,
  InvalidEndpoint = true,
  EndpointNotAllowed = true,
}

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  return hs
end

-- kstatus conventions, honoured once the operator publishes them: a spec the operator has not seen yet,
-- a terminal state (Stalled), a new generation being acted on (Reconciling).
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
if obj.status.observedGeneration ~= nil and generation ~= nil and obj.status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end
-- Waiting for the first consent is also Reconciling (kstatus InProgress, so a Flux rollout waits for
-- it); Argo CD shows the more precise Suspended.
local authorized = condition("Authorized")
if authorized ~= nil and authorized.status == "False" then
  if authorized.reason == "AuthorizationPending" and obj.status.consentStateHash ~= nil and obj.status.consentStateHash ~= "" then
    hs.status = "Suspended"
    local where = "the consent Secret"
    if obj.status.consentSecretName ~= nil and obj.status.consentSecretName ~= "" then
      where = "Secret " .. obj.status.consentSecretName
    end
    hs.message = "Waiting for consent: the link is in " .. where .. " (kubectl thingspace consent)"
    return hs
  end
  if consentFailed[authorized.reason] then
    hs.status = "Degraded"
    hs.message = describe(authorized)
    return hs
  end
end

local reconciling = condition("Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = short(reconciling.message)
  return hs
end

local ready = condition("Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  if obj.status.expiresAt ~= nil then
    hs.message = "Token valid until " .. obj.status.expiresAt
  else
    hs.message = short(ready.message)
  end
  if ready.reason == "RefreshFailing" then
    hs.message = hs.message .. "; the last refresh failed and is retried"
  end
  -- The refresh token dies unused at the time the message gives, unless a refresh succeeds first.
  if authorized ~= nil and authorized.reason == "RefreshTokenAtRisk" then
    hs.message = hs.message .. "; " .. describe(authorized)
  end
  return hs
end
if ready.status == "False" and terminal[ready.reason] then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end
-- Pending (no URL issued yet), UpstreamUnavailable (retried with backoff), GrantNotStored (the tokens
-- are kept and stored as soon as the Secret can be written), CredentialsNotFound, Ready=Unknown.
hs.status = "Progressing"
hs.message = describe(ready)
return hs
