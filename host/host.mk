# host: the sesh command line, console and embedding API.
#
#   $(BIN)/sesh                 the command line and console (a client of libsesh)
#   $(LIB)/libsesh.a, .so       the embedding API of host/sesh.h
#   $(LIB)/lua/5.4/sessions.so  the module for stock lua5.4 (no Lua linked in:
#                               the interpreter provides it)
#   $(BUILD)/include/sesh.h     the header, where an installed one would be
HOST_OBJS    := $(patsubst host/%.c,$(OBJ)/%.o,$(wildcard host/*.c))
LIBSESH_OBJS := $(OBJ)/libsesh.o $(BINDING_OBJS) $(TRANSPORT_OBJS) $(COMMON_OBJS)
SESH_ABI     := 0
SESH_RELEASE := $(VERSION)

all: $(BIN)/sesh $(LIB)/libsesh.a $(LIB)/libsesh.so $(LIB)/lua/5.4/sessions.so \
     $(BUILD)/include/sesh.h

# A statically linked embedder cannot tell where sesh is installed; it falls
# back to the prefix it was built for.
$(OBJ)/libsesh.o: CFLAGS += -DSESH_PREFIX='"$(PREFIX)"'

# The executable takes the binding and transport from sessions.so on first
# use (host/modules.c), so a start-up loads no libcurl.
$(BIN)/sesh: $(HOST_OBJS) $(COMMON_OBJS) | $(LIB)/lua/5.4/sessions.so
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(HOST_OBJS) $(COMMON_OBJS) $(CJSON_LIBS) $(LUA_LIBS) -lreadline -lm -ldl

$(LIB)/libsesh.a: $(LIBSESH_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

# Both shared objects export the API of sesh.h only (host/libsesh.map).
SESH_EXPORTS := -Wl,--version-script=host/libsesh.map

$(LIB)/libsesh.so.$(SESH_RELEASE): $(LIBSESH_OBJS) host/libsesh.map
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libsesh.so.$(SESH_ABI) $(SESH_EXPORTS) \
	    -o $@ $(LIBSESH_OBJS) \
	    $(CJSON_LIBS) $(LUA_LIBS) $(CURL_LIBS) -lm -ldl

$(LIB)/libsesh.so: $(LIB)/libsesh.so.$(SESH_RELEASE)
	ln -sfn libsesh.so.$(SESH_RELEASE) $(LIB)/libsesh.so.$(SESH_ABI)
	ln -sfn libsesh.so.$(SESH_ABI) $@

$(LIB)/lua/5.4/sessions.so: $(LIBSESH_OBJS) host/libsesh.map
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared $(SESH_EXPORTS) -o $@ $(LIBSESH_OBJS) \
	    $(CJSON_LIBS) $(CURL_LIBS) -lm -ldl

$(BUILD)/include/sesh.h: host/sesh.h
	@mkdir -p $(dir $@)
	cp $< $@

# --- install -------------------------------------------------------------
# make install PREFIX=/opt/sesh [DESTDIR=/staging]; make uninstall with the same.
DEST        = $(DESTDIR)$(PREFIX)
LUA_FILES   = $(shell cd lua && find . -name '*.lua' | sort)

# Folders install makes that were not there before, deepest first (the prefix
# itself is "-"); kept in share/sesh/installed-dirs, so that uninstall takes
# away those it leaves empty and no folder that was there before.
INSTALL_DIRS = - bin lib lib/lua lib/lua/5.4 lib/pkgconfig include share

install: all
	@new=""; for d in $(INSTALL_DIRS); do \
	    if [ "$$d" = - ]; then p="$(DEST)"; else p="$(DEST)/$$d"; fi; \
	    [ -d "$$p" ] || new="$$d $$new"; done; \
	  install -d $(DEST)/bin $(DEST)/lib/lua/5.4 $(DEST)/lib/pkgconfig \
	    $(DEST)/include $(DEST)/share/sesh/lua && \
	  old=$$(cat $(DEST)/share/sesh/installed-dirs 2>/dev/null || true) && \
	  echo $$new $$old > $(DEST)/share/sesh/installed-dirs
	install -m 755 $(BIN)/sesh $(BIN)/sesh-pool $(DEST)/bin/
	install -m 644 $(LIB)/libsesh.a $(DEST)/lib/
	install -m 755 $(LIB)/libsesh.so.$(SESH_RELEASE) $(DEST)/lib/
	ln -sfn libsesh.so.$(SESH_RELEASE) $(DEST)/lib/libsesh.so.$(SESH_ABI)
	ln -sfn libsesh.so.$(SESH_ABI) $(DEST)/lib/libsesh.so
	install -m 755 $(LIB)/lua/5.4/sessions.so $(DEST)/lib/lua/5.4/
	install -m 644 host/sesh.h $(DEST)/include/
	cd lua && for f in $(LUA_FILES); do \
	    install -D -m 644 "$$f" "$(DEST)/share/sesh/lua/$$f" || exit 1; done
	@# -lcurl, not "Requires.private: libcurl": a static libsesh links the system's
	@# shared libcurl, whose own private libraries (ldap, zstd, ...) have no
	@# static or -dev package installed with libcurl's
	{ echo 'prefix=$(PREFIX)'; \
	  echo 'libdir=$${prefix}/lib'; \
	  echo 'includedir=$${prefix}/include'; \
	  echo ''; \
	  echo 'Name: sesh'; \
	  echo 'Description: Python sessions from Lua: the sesh host, embeddable'; \
	  echo 'Version: $(SESH_RELEASE)'; \
	  echo 'Requires: lua5.4'; \
	  echo 'Cflags: -I$${includedir}'; \
	  echo 'Libs: -L$${libdir} -Wl,-rpath,$${libdir} -lsesh'; \
	  echo 'Libs.private: -llua5.4-cjson -lcurl -lm -ldl'; } > $(DEST)/lib/pkgconfig/sesh.pc

uninstall:
	@dirs=$$(cat $(DEST)/share/sesh/installed-dirs 2>/dev/null); \
	  rm -f $(DEST)/bin/sesh $(DEST)/bin/sesh-pool && \
	  rm -f $(DEST)/lib/libsesh.a $(DEST)/lib/libsesh.so $(DEST)/lib/libsesh.so.$(SESH_ABI) \
	    $(DEST)/lib/libsesh.so.$(SESH_RELEASE) && \
	  rm -f $(DEST)/lib/lua/5.4/sessions.so $(DEST)/include/sesh.h \
	    $(DEST)/lib/pkgconfig/sesh.pc && \
	  rm -rf $(DEST)/share/sesh && \
	  for d in $$dirs; do \
	    if [ "$$d" = - ]; then p="$(DEST)"; else p="$(DEST)/$$d"; fi; \
	    rmdir "$$p" 2>/dev/null || true; done
