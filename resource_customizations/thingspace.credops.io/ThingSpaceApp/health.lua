-- Argo CD health of a ThingSpaceApp (thingspace.credops.io): an OAuth2 app token kept in a Secret.
-- The same script serves ClusterThingSpaceApp (its health.lua is a link to this one): a Healthy
-- ClusterThingSpaceApp also says how many namespaces' consumers it serves and refuses.
-- Healthy while the Secret holds an unexpired token; Degraded when only a person can fix it (the
-- operator retries nothing until the credentials Secret or the spec changes); Progressing otherwise.
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

-- Ready=False reasons the operator does not retry by itself.
local terminal = {
  CredentialsRejected = true,
  RequestInvalid = true,
  SecretConflict = true,
  InvalidEndpoint = true,
  EndpointNotAllowed = true,
  NotAllowed = true,
}

-- What a ClusterThingSpaceApp adds to its message: its consumers (status.consumers, refusedConsumers).
local function consumers()
  if obj.kind ~= "ClusterThingSpaceApp" or obj.status == nil then
    return ""
  end
  local n = obj.status.consumers or 0
  local out = "; " .. n .. " consumer(s)"
  if obj.status.refusedConsumers ~= nil and obj.status.refusedConsumers > 0 then
    out = out .. ", " .. obj.status.refusedConsumers .. " refused (namespace not allowed)"
  end
  return out
end

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
  hs.message = hs.message .. consumers()
  return hs
end
if ready.status == "False" and terminal[ready.reason] then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end
-- Pending, UpstreamUnavailable (retried with backoff), CredentialsNotFound (acted on as soon as the
-- Secret appears, which a GitOps sync may create a moment later), Ready=Unknown.
hs.status = "Progressing"
hs.message = describe(ready)
return hs
