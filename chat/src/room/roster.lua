-- The chat room's roster in Redis, shared by every chat-server of one
-- room. Each script runs atomically and publishes the room's events on
-- the room's channel, so a change to the roster and its announcement
-- take one place in the one order every server's subscription delivers.
--
-- Keys, under the prefix P (ARGV[1]); S is a server's id (ARGV[2]):
--   P:names      hash  name -> "S UID"   a name's owner (names are unique)
--   P:order      zset  name by arrival   for `present:` in arrival order
--   P:users:S    hash  UID -> name       server S's users
--   P:alive:S    string, with a TTL      server S is alive
--   P:servers    set   of S              servers that may need reaping
--   P:numbers    counter                 for fresh `user<N>` names
--   P:arrivals   counter                 arrival order
-- Channel P:events carries:
--   arrived S UID NAME | says S UID TEXT | nick S UID OLD NEW |
--   left S UID NAME [REASON] | sync S TOKEN
local p, sid = ARGV[1], ARGV[2]
local names, order, events = p .. ':names', p .. ':order', p .. ':events'

-- Takes user UID of server S out of the roster, announced as left (with
-- REASON, '' for none), if the name is still registered to it.
local function drop(s, uid, name, why)
  local owner = s .. ' ' .. uid
  if name and redis.call('HGET', names, name) == owner then
    redis.call('HDEL', names, name)
    redis.call('ZREM', order, name)
    local line = 'left ' .. owner .. ' ' .. name
    if why ~= '' then line = line .. ' ' .. why end
    redis.call('PUBLISH', events, line)
    return 1
  end
  return 0
end

-- Takes server S and all its users out of the roster.
local function depart(s, why)
  local n = 0
  local users = redis.call('HGETALL', p .. ':users:' .. s)
  for i = 1, #users, 2 do
    n = n + drop(s, users[i], users[i + 1], why)
  end
  redis.call('DEL', p .. ':users:' .. s, p .. ':alive:' .. s)
  redis.call('SREM', p .. ':servers', s)
  return n
end
