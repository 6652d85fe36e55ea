# binding: the Lua C modules (sesh.http, sessions.core) over the transport.
BINDING_OBJS := $(OBJ)/binding/lhttp.o
