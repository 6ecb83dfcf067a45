CREATE TABLE all_types (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  c_tinyint     TINYINT NOT NULL DEFAULT -128,
  c_utinyint    TINYINT UNSIGNED,
  c_bool        BOOL DEFAULT 1,
  c_smallint    SMALLINT,
  c_usmallint   SMALLINT UNSIGNED ZEROFILL,
  c_mediumint   MEDIUMINT,
  c_umediumint  MEDIUMINT UNSIGNED,
  c_int         INT NOT NULL DEFAULT 0,
  c_uint        INT UNSIGNED,
  c_bigint      BIGINT,
  c_decimal     DECIMAL(65,30) DEFAULT 1.5,
  c_decimal2    DECIMAL(10,2) UNSIGNED,
  c_float       FLOAT,
  c_float2      FLOAT(7,3),
  c_double      DOUBLE,
  c_double2     DOUBLE(12,4),
  c_bit1        BIT(1),
  c_bit64       BIT(64),
  c_year        YEAR,
  c_date        DATE DEFAULT '2020-02-29',
  c_time        TIME,
  c_time6       TIME(6),
  c_datetime    DATETIME,
  c_datetime6   DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  c_timestamp   TIMESTAMP NULL DEFAULT NULL,
  c_timestamp6  TIMESTAMP(6) NULL,
  c_char        CHAR(10) CHARACTER SET latin1 COLLATE latin1_bin,
  c_varchar     VARCHAR(255) DEFAULT 'it''s',
  c_binary      BINARY(16),
  c_varbinary   VARBINARY(255),
  c_tinytext    TINYTEXT,
  c_text        TEXT,
  c_mediumtext  MEDIUMTEXT,
  c_longtext    LONGTEXT,
  c_tinyblob    TINYBLOB,
  c_blob        BLOB,
  c_mediumblob  MEDIUMBLOB,
  c_longblob    LONGBLOB,
  c_enum        ENUM('small','medium','it''s') NOT NULL DEFAULT 'small',
  c_set         SET('a','b','c'),
  c_json        JSON,
  c_virtual     INT AS (c_int * 2) VIRTUAL,
  c_stored      VARCHAR(300) AS (CONCAT(c_varchar, '!')) STORED,
  c_comment     INT COMMENT 'a comment',
  PRIMARY KEY (id),
  UNIQUE KEY uk_int_char (c_int, c_char),
  KEY k_varchar_prefix (c_varchar(20)),
  KEY k_date_desc (c_date DESC, c_time)
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='every column type';

CREATE TABLE parent (
  region  CHAR(2) NOT NULL,
  pid     INT NOT NULL,
  name    VARCHAR(50) NOT NULL,
  PRIMARY KEY (region, pid),
  UNIQUE KEY uk_name (name)
);

CREATE TABLE child (
  id      INT NOT NULL,
  region  CHAR(2),
  pid     INT,
  note    VARCHAR(20),
  PRIMARY KEY (id),
  KEY k_parent (region, pid),
  CONSTRAINT fk_child_parent FOREIGN KEY (region, pid) REFERENCES parent (region, pid)
    ON DELETE CASCADE ON UPDATE RESTRICT
);

CREATE TABLE no_pk (
  a INT,
  b VARCHAR(10),
  KEY k_a (a)
);

CREATE TABLE uk_only (
  code VARCHAR(10) NOT NULL,
  v    INT,
  UNIQUE KEY uk_code (code)
);

CREATE TABLE geo (
  id                    INT NOT NULL PRIMARY KEY,
  c_geometry            GEOMETRY,
  c_point               POINT NOT NULL,
  c_linestring          LINESTRING,
  c_polygon             POLYGON,
  c_multipoint          MULTIPOINT,
  c_multilinestring     MULTILINESTRING,
  c_multipolygon        MULTIPOLYGON,
  c_geometrycollection  GEOMETRYCOLLECTION,
  SPATIAL KEY sk_point (c_point)
);

CREATE VIEW v_parent AS SELECT region, pid, name FROM parent;
CREATE VIEW v_child_names AS SELECT c.id, p.name FROM child c JOIN v_parent p ON p.region = c.region AND p.pid = c.pid;
