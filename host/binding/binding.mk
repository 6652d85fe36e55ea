# binding: the Lua C modules (sessions.http, sessions.core) over the transport.
BINDING_OBJS := $(patsubst host/%.c,$(OBJ)/%.o,$(wildcard host/binding/*.c))
