-- Argo CD health of a Podium RegisteredModel or ModelVersion, read from its kstatus conditions
-- (Ready, Reconciling, Stalled), as kstatus reads them, so that Argo CD and Flux agree:
--   Progressing  no status yet, or the status describes an older generation, or Reconciling=True
--   Degraded     Stalled=True, or Ready=False without Reconciling=True
--   Healthy      Ready=True (a version that fails its gates is Healthy: it is decided)
-- The message is the Ready condition's. docs/gitops.md says how to install it in argocd-cm.
local hs = { status = "Progressing", message = "Waiting for the Podium operator" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end

local conditions = {}
for _, c in ipairs(obj.status.conditions) do
  conditions[c.type] = c
end
local ready = conditions["Ready"]
if ready == nil then
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and ((obj.status.observedGeneration or 0) < generation or (ready.observedGeneration or 0) < generation) then
  hs.message = "Waiting for the Podium operator to observe generation " .. generation
  return hs
end

hs.message = ready.message or ""
if conditions["Reconciling"] ~= nil and conditions["Reconciling"].status == "True" then
  return hs
end
if conditions["Stalled"] ~= nil and conditions["Stalled"].status == "True" then
  hs.status = "Degraded"
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
elseif ready.status == "False" then
  hs.status = "Degraded"
end
return hs
